"""Evaluation (recipe/sgpo/eval): scores against exact formulas on hand-made verl validation records, tables
against hand-computed values, curves, checkpoint detection, the fail-fast checks, and the launch scripts.

Records are written in exactly the layout verl 0.9.1's V1 trainer dumps to ``trainer.validation_data_dir``
(``uid`` = ``<problem uuid>_<sample>_<turn>``, plus the SGPO reward manager's ``acc`` and ``pred``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shlex
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from recipe.sgpo.eval import scores, tables
from recipe.sgpo.eval.curves import plot_runs

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_records(path: Path, problems: list[tuple[str, list[int], list[str]]], shuffle: bool = True) -> Path:
    """A verl-format validation jsonl: one line per sample; lines interleaved across problems like verl's sort."""
    lines = []
    for number, (answer, correct, preds) in enumerate(problems):
        for sample, (acc, pred) in enumerate(zip(correct, preds)):
            lines.append({"input": f"problem {number}", "output": f"... \\boxed{{{pred}}}", "gts": answer,
                          "score": float(acc), "step": 0, "reward": float(acc), "acc": float(acc), "pred": pred,
                          "uid": f"uuid-{number:04d}_{sample}_0"})
    if shuffle:  # sample order in the file must not matter, only the uid's sample index
        lines = lines[::-1]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


# ---------------------------------------------------------------------------------------------- scores


def test_pass_at_k_equals_the_exact_binomial_formula_including_large_n():
    for n in (1, 2, 5, 16):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert scores.pass_at_k(n, c, k) == pytest.approx(float(exact_pass_at_k(n, c, k)), abs=1e-12), (n, c, k)
    # C(1000, 300) has ~260 digits (a float overflows); the product form stays exact to 1e-12.
    assert scores.pass_at_k(1000, 3, 300) == pytest.approx(float(exact_pass_at_k(1000, 3, 300)), abs=1e-12)
    with pytest.raises(ValueError, match="k=17"):
        scores.pass_at_k(16, 3, 17)


def test_benchmark_scores_match_hand_computed_values(tmp_path):
    n = 16
    correct_counts = [0, 1, 8, 16]
    problems = [(str(i), [1] * c + [0] * (n - c), [str(i) if j < c else "wrong" for j in range(n)]) for i, c in enumerate(correct_counts)]
    path = write_records(tmp_path / "0.jsonl", problems)
    score = scores.score_problems("toy", scores.read_problems(path))

    assert score.problems == 4 and score.samples_per_problem == n
    assert score.avg == pytest.approx(100 * (0 + 1 + 8 + 16) / 64)
    for k in scores.PASS_AT_K:
        expected = 100 * float(sum(exact_pass_at_k(n, c, k) for c in correct_counts) / 4)
        assert score.pass_at_k[str(k)] == pytest.approx(expected), k
    assert score.pass_at_k["1"] == pytest.approx(score.avg)  # Avg@n is unbiased pass@1
    # maj: problem 0 votes "wrong"; 1: "wrong" 15 vs 1; 2: tie 8/8, "2" came first -> correct; 3: correct.
    assert score.maj == pytest.approx(50.0)
    # Columns: sample j is correct for problem i iff j < c_i -> column accuracies 3/4, 2/4 x7, 1/4 x8.
    columns = np.array([75.0] + [50.0] * 7 + [25.0] * 8)
    assert score.std == pytest.approx(float(np.std(columns, ddof=1)))
    assert score.ci_low <= score.avg <= score.ci_high
    assert [row["correct"] for row in score.per_problem] == correct_counts


def test_majority_vote_ignores_empty_answers_and_breaks_ties_by_first_seen():
    assert scores.majority_correct(["", "", "7", "8", "8"], [0, 0, 1, 0, 0]) == 0
    assert scores.majority_correct(["7", "8", "8", "7"], [1, 0, 0, 1]) == 1
    assert scores.majority_correct(["", ""], [0, 0]) == 0


def test_records_without_the_reward_managers_keys_are_refused_with_the_file_and_the_fix(tmp_path):
    path = tmp_path / "0.jsonl"
    path.write_text(json.dumps({"input": "x", "output": "y", "gts": "1", "score": 1.0, "uid": "a_0_0"}) + "\n")
    with pytest.raises(scores.RecordsError, match=r"0\.jsonl:1: missing \['acc', 'pred'\].*reward_manager\.name=sgpo"):
        scores.read_problems(path)


def test_unequal_sample_counts_are_refused(tmp_path):
    path = write_records(tmp_path / "0.jsonl", [("1", [1, 0], ["1", "2"]), ("2", [1], ["2"])])
    with pytest.raises(scores.RecordsError, match="different sample counts"):
        scores.read_problems(path)


def test_macro_average_is_the_unweighted_mean_over_benchmarks(tmp_path):
    a = scores.score_problems("a", scores.read_problems(write_records(tmp_path / "a.jsonl", [("1", [1, 1], ["1", "1"])])))
    b = scores.score_problems("b", scores.read_problems(write_records(tmp_path / "b.jsonl", [("1", [0, 1], ["2", "1"]), ("2", [0, 0], ["", ""])])))
    macro = scores.macro_average([a, b])
    assert macro["avg"] == pytest.approx((100.0 + 25.0) / 2)
    assert macro["pass_at_k"]["2"] == pytest.approx((100.0 + 50.0) / 2)


# ---------------------------------------------------------------------------------------------- tables


def write_result(path: Path, model: str, method: str, step: int | None, avgs: dict[str, float]) -> Path:
    benchmarks = {name: {"avg": value} for name, value in avgs.items()}
    protocol = {"model_label": model, "method": method, "step": step}
    path.write_text(json.dumps({"format": scores.RESULTS_FORMAT, "version": scores.RESULTS_VERSION,
                                "protocol": protocol, "benchmarks": benchmarks, "macro_average": {}}))
    return path


def test_table_rows_stages_differences_and_published_numbers(tmp_path):
    files = [
        write_result(tmp_path / "g1.json", "r1-distill-qwen-7b", "GRPO", 100, {"math500": 80.0, "aime24": 30.0}),
        write_result(tmp_path / "g2.json", "r1-distill-qwen-7b", "GRPO", 300, {"math500": 82.0, "aime24": 32.0}),
        write_result(tmp_path / "s1.json", "r1-distill-qwen-7b", "SGPO", 100, {"math500": 84.5, "aime24": 31.0}),
        write_result(tmp_path / "s2.json", "r1-distill-qwen-7b", "SGPO", 300, {"math500": 83.0, "aime24": 35.8}),
    ]
    ours = tables.rows_from_results(files)
    table = tables.build_table(ours, tables.reference_rows({row.model for row in ours}))
    markdown = tables.to_markdown(table)

    assert table.columns == ["math500", "aime24"]  # the paper's order, only benchmarks we have
    assert "| r1-distill-qwen-7b | SGPO | early (step 100) | 84.5 | 31.0 | 57.8 |" in markdown  # (84.5+31)/2 = 57.75
    assert "| r1-distill-qwen-7b | SGPO − GRPO | early (step 100) | +4.5 | +1.0 | +2.8 |" in markdown
    assert "| r1-distill-qwen-7b | SGPO − GRPO | late (step 300) | +1.0 | +3.8 | +2.4 |" in markdown
    # Published: DeepSeek's row of this model (AIME24 55.5, MATH500 92.8) and the unnamed SGPO row.
    assert "| r1-distill-qwen-7b | base model (published) |  | 92.8 | 55.5 | 74.2 |" in markdown
    assert "| (not named) | SGPO (published) |  | 87.8 | 31.2 | 59.5 |" in markdown
    assert "deepseek-r1-distill-qwen-14b" not in tables.to_csv(table)  # other sizes' references stay out

    rows = list(csv.reader(io.StringIO(tables.to_csv(table))))
    assert rows[0] == ["Model", "Method", "Stage", "MATH500", "AIME24", "Avg", "source"]
    assert rows[1][:6] == ["r1-distill-qwen-7b", "GRPO", "early (step 100)", "80.0", "30.0", "55.0"]
    latex = tables.to_latex(table)
    assert r"SGPO $-$ GRPO & early (step 100) & +4.5 & +1.0 & +2.8 \\" in latex
    assert latex.count(r"\midrule") == 3  # header | ours | differences | published


def test_stage_names_by_thirds():
    assert [tables.stage_name(i, 3) for i in range(3)] == ["early", "mid", "late"]
    assert [tables.stage_name(i, 2) for i in range(2)] == ["early", "late"]
    assert tables.stage_name(0, 1) == ""


def test_average_is_missing_when_a_row_lacks_a_column(tmp_path):
    ours = tables.rows_from_results([write_result(tmp_path / "a.json", "m", "SGPO", None, {"math500": 50.0, "aime24": 10.0})])
    partial = tables.Row(model="m", method="x (published)", scores={"math500": 40.0}, published=True)
    markdown = tables.to_markdown(tables.build_table(ours, [partial]))
    assert "| m | x (published) |  | 40.0 | – | – |" in markdown


def test_a_file_that_is_not_a_result_file_is_refused(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"val-core/sgpo/math500/acc/mean@16": 0.5}))
    with pytest.raises(scores.RecordsError, match="not an SGPO result file"):
        tables.rows_from_results([path])


def file_logger(path: Path, records: list[tuple[int, dict]]) -> Path:
    path.write_text("".join(json.dumps({"step": step, "data": data}) + "\n" for step, data in records))
    return path


def test_table_from_training_logs_reads_val_core_mean_at_n(tmp_path):
    log = file_logger(tmp_path / "metrics.jsonl", [
        (0, {"val-core/sgpo/math500/acc/mean@16": 0.25, "val-core/sgpo/aime24/acc/mean@16": 0.05}),
        (1, {"sgpo/accuracy": 0.1, "timing_s/step": 40.0}),
        (20, {"val-core/sgpo/math500/acc/mean@16": 0.5, "val-core/sgpo/aime24/acc/mean@16": 0.1,
              "val-aux/sgpo/math500/acc/std@16": 0.3}),
    ])
    markdown = tables.to_markdown(tables.log_table([("sgpo-7b", log)]))
    assert "| sgpo-7b | validation | step 0 | 25.0 | 5.0 | 15.0 |" in markdown
    assert "| sgpo-7b | validation | step 20 | 50.0 | 10.0 | 30.0 |" in markdown
    assert "step 1 " not in markdown  # a training step without validation is no row


def test_table_from_tensorboard_event_files(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    writer.add_scalar("val-core/sgpo/math500/acc/mean@16", 0.625, 10)
    writer.close()
    markdown = tables.to_markdown(tables.log_table([("run", tmp_path / "tb")]))
    assert "| run | validation | step 10 | 62.5 | 62.5 |" in markdown


# ---------------------------------------------------------------------------------------------- curves


def test_curves_draw_every_quantity_present_in_either_run(tmp_path):
    grpo = file_logger(tmp_path / "grpo.jsonl", [(step, {"sgpo/accuracy": 0.1 * step, "sgpo/groups/all_negative_share": 0.9,
                                                        "timing_s/step": 50.0}) for step in (1, 2, 3)])
    sgpo = file_logger(tmp_path / "sgpo.jsonl", [(step, {"sgpo/accuracy": 0.12 * step, "sgpo/groups/all_negative_share": 0.8,
                                                        "sgpo/judge/called": 12.0, "sgpo/judge/latency_s/mean": 1.5,
                                                        "timing_s/step": 55.0}) for step in (1, 2, 3)]
                       + [(3, {"val-core/sgpo/math500/acc/mean@16": 0.4})])
    output = tmp_path / "curves.png"
    drawn = plot_runs([("GRPO", grpo), ("SGPO", sgpo)], output)
    assert drawn == [panel.title for panel in __import__("recipe.sgpo.eval.curves", fromlist=["PANELS"]).PANELS]
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn_without_judge = plot_runs([("GRPO", grpo)], tmp_path / "grpo.png")
    assert drawn_without_judge == ["training accuracy", "all-negative groups", "step time"]


# ---------------------------------------------------------------------------------------------- inputs of `run`


@pytest.fixture(scope="module")
def arith_val(tmp_path_factory) -> Path:
    """A real data_prep parquet (the arith task's validation split, with its manifest)."""
    out = tmp_path_factory.mktemp("data")
    subprocess.run([sys.executable, "-m", "data_prep", "write", "arith", "--out", str(out), "--arith-val-size", "4",
                    "--arith-train-size", "4", "--quiet"], cwd=REPO_ROOT, check=True, capture_output=True)
    return out / "arith" / "val.parquet"


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    from recipe.cpu_backend.tiny_model import TINY_SHAPE, build_tiny_policy

    assert TINY_SHAPE["max_position_embeddings"] == 1024  # the context test below relies on it
    return build_tiny_policy(tmp_path_factory.mktemp("tiny"))


def eval_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recipe.sgpo.eval", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_a_folder_that_is_not_a_model_stops_before_generation(tmp_path, arith_val):
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "README.txt").write_text("notes")
    done = eval_cli("run", "--model", str(folder), "--benchmarks", str(arith_val), "--out", str(tmp_path / "out"), "--family", "base")
    assert done.returncode == 2
    assert f"{folder} is not a model" in done.stderr and "global_step_N/actor" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_parquet_that_is_not_ours_stops_before_generation(tmp_path, tiny_policy):
    import pyarrow as pa
    import pyarrow.parquet as pq

    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"question": ["1+1"], "answer": ["2"]}), foreign)
    done = eval_cli("run", "--model", str(tiny_policy), "--benchmarks", str(foreign), "--out", str(tmp_path / "out"), "--family", "base")
    assert done.returncode == 2
    assert f"benchmark {foreign}: not our row schema" in done.stderr and "python -m data_prep write benchmarks" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_changed_benchmark_file_is_refused_by_its_manifest(tmp_path, arith_val):
    import shutil

    from recipe.sgpo.eval.run import EvalInputError, check_benchmark

    copy = tmp_path / "val.parquet"
    shutil.copy(arith_val, copy)
    manifest = json.loads(arith_val.with_suffix(".manifest.json").read_text())
    manifest["sha256"] = "0" * 64
    copy.with_suffix(".manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EvalInputError, match="sha256 differs"):
        check_benchmark(copy)
    assert check_benchmark(arith_val).name == "arith"


def test_a_response_length_beyond_the_context_stops_before_generation(tmp_path, tiny_policy, arith_val):
    done = eval_cli("run", "--model", str(tiny_policy), "--benchmarks", str(arith_val), "--out", str(tmp_path / "out"),
                    "--family", "base", "--max-prompt-tokens", "256", "--max-response-tokens", "1000")
    assert done.returncode == 2
    assert "= 1256 exceeds the context" in done.stderr and "max_position_embeddings 1024" in done.stderr
    assert "lower --max-response-tokens to 768" in done.stderr
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_verls_validation_command_with_the_family_defaults(tmp_path, tiny_policy, arith_val):
    done = eval_cli("run", "--model", str(tiny_policy), "--benchmarks", str(arith_val), "--out", str(tmp_path / "out"),
                    "--family", "base", "--max-prompt-tokens", "256", "--max-response-tokens", "512", "--dry-run")
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout.strip().splitlines()[-1])
    assert words[1:3] == ["-m", "verl.trainer.main_ppo"]
    overrides = dict(word.split("=", 1) for word in words if "=" in word and not word.startswith("--"))
    assert overrides["trainer.val_only"] == "True" and overrides["trainer.val_before_train"] == "True"
    assert overrides["actor_rollout_ref.rollout.val_kwargs.n"] == "16"
    assert overrides["actor_rollout_ref.rollout.val_kwargs.temperature"] == "0.6"
    assert overrides["actor_rollout_ref.rollout.val_kwargs.top_p"] == "0.95"
    assert overrides["data.max_response_length"] == "512"
    assert overrides["data.val_files"] == str(arith_val.resolve())
    assert overrides["trainer.validation_data_dir"].endswith("benchmarks/arith/generations")


def test_checkpoint_detection(tmp_path, tiny_policy):
    from recipe.sgpo.eval import checkpoint

    assert checkpoint.detect(str(tiny_policy)).kind == "hf_folder"
    assert checkpoint.detect("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B@main") == checkpoint.ModelSource(
        "hub", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", revision="main")
    actor = tmp_path / "global_step_40" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    (actor / "fsdp_config.json").write_text(json.dumps({"world_size": 1}))
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"shard")
    (actor / "huggingface" / "config.json").write_text("{}")
    assert checkpoint.detect(str(actor.parent)) == checkpoint.ModelSource("fsdp", str(actor.resolve()), step=40)
    key = checkpoint.content_key(actor)
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"other")
    assert checkpoint.content_key(actor) != key  # a re-saved checkpoint is merged anew


# ---------------------------------------------------------------------------------------------- launch scripts

#: Each evaluation script and the response length its family's defaults give (recipe/sgpo/eval/families.py).
EVAL_SCRIPTS = {
    "eval_qwen2.5-7b.sh": 3072, "eval_qwen2.5-14b.sh": 3072, "eval_qwen2.5-32b.sh": 3072,
    "eval_r1-distill-qwen-7b.sh": 32768, "eval_r1-distill-qwen-14b.sh": 32768, "eval_r1-distill-qwen-32b.sh": 32768,
}


@pytest.fixture(scope="module")
def long_context_policy(tiny_policy, tmp_path_factory) -> Path:
    """The tiny policy with a 40k-token context in its config, so the distilled defaults fit."""
    import shutil

    folder = tmp_path_factory.mktemp("long") / "policy"
    shutil.copytree(tiny_policy, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 40960
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_every_model_size_has_an_eval_script():
    scripts = {path.name for path in (REPO_ROOT / "run_scripts").glob("eval_*.sh")} - {"eval_common.sh"}
    models = {path.stem for path in (REPO_ROOT / "run_scripts" / "models").glob("*.sh")}
    assert scripts == set(EVAL_SCRIPTS)  # 7B/14B/32B, base and distilled
    assert scripts <= {f"eval_{model}.sh" for model in models}  # each sources its model file


@pytest.mark.parametrize("script", sorted(EVAL_SCRIPTS))
def test_eval_script_dry_run_prints_the_validation_command(script, long_context_policy, arith_val, tmp_path):
    env = dict(os.environ, DRY_RUN="1", CHECKPOINT=str(long_context_policy), BENCHMARK_FILES=str(arith_val),
               METHOD="SGPO", EVAL_OUT=str(tmp_path / "out"), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO_ROOT / "run_scripts" / script)], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout.strip().splitlines()[-1])
    overrides = dict(word.split("=", 1) for word in words if "=" in word and not word.startswith("--"))
    assert overrides["data.max_response_length"] == str(EVAL_SCRIPTS[script])
    assert overrides["actor_rollout_ref.rollout.val_kwargs.n"] == "16"
    assert overrides["trainer.val_only"] == "True"
    assert overrides["actor_rollout_ref.rollout.name"] == "vllm"
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


# ---------------------------------------------------------------------------------------------- prompt lengths


@pytest.fixture(scope="module")
def fixture_benchmarks(tmp_path_factory) -> list[Path]:
    """Two real benchmark parquet files (AIME24, AMC23; 2 problems each) written by data_prep from the
    repository's hub-snapshot fixtures, in the base family's Qwen-math template."""
    out = tmp_path_factory.mktemp("benchmarks")
    subprocess.run([sys.executable, "-m", "data_prep", "write", "aime24", "amc23", "--source-dir",
                    str(REPO_ROOT / "tests" / "fixtures" / "data_prep"), "--template", "qwen_math", "--out", str(out), "--quiet"],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    return [out / "aime24" / "test.parquet", out / "amc23" / "test.parquet"]


def test_a_prompt_longer_than_max_prompt_tokens_stops_before_generation(tmp_path, tiny_policy, fixture_benchmarks):
    """verl's data.filter_overlong_prompts would drop the row, and the benchmark would be scored over 1 of its
    2 problems. AIME24's row 0 is 619 tokens for the tiny policy's byte tokenizer (as verl counts: chat
    template with the generation prompt), row 1 is 233."""
    aime24 = fixture_benchmarks[0]
    done = eval_cli("run", "--model", str(tiny_policy), "--benchmarks", str(aime24), "--out", str(tmp_path / "out"),
                    "--family", "base", "--max-prompt-tokens", "512", "--max-response-tokens", "16", "--dry-run")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"benchmark {aime24}: 1 of 2 prompts are longer than --max-prompt-tokens 512 (row 0: 619 tokens)" in done.stderr
    assert "Raise --max-prompt-tokens to 619 or more" in done.stderr
    assert not (tmp_path / "out").exists()
    fits = eval_cli("run", "--model", str(tiny_policy), "--benchmarks", str(aime24), "--out", str(tmp_path / "out"),
                    "--family", "base", "--max-prompt-tokens", "619", "--max-response-tokens", "16", "--dry-run")
    assert fits.returncode == 0, fits.stderr


# ---------------------------------------------------------------------------------------------- end to end

#: The end-to-end evaluation's protocol: 2 samples of at most 16 tokens; 768 prompt tokens fit every fixture prompt.
E2E_SAMPLING = ("--family", "base", "--samples", "2", "--max-prompt-tokens", "768", "--max-response-tokens", "16", "--method", "SGPO",
                "--model-label", "tiny")
#: Seconds allowed for one trainer launch (the demo, or one benchmark) on 2 busy cores; a run takes ~80-100 s.
LAUNCH_TIMEOUT_S = 600
#: Seconds to wait for Ray's processes to exit after the kill before ending them one by one.
RAY_EXIT_WAIT_S = 15


def eval_run_command(model: Path, benchmarks: list[Path], out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "recipe.sgpo.eval", "run", "--platform", "cpu", "--model", str(model), "--benchmarks",
            *map(str, benchmarks), "--out", str(out), "--cache-dir", str(cache), *E2E_SAMPLING]


def kill_during(command: list[str], started: Path, marker: str, log: Path) -> None:
    """Start the CLI in a process group of its own, wait until ``started`` holds ``marker``, then SIGKILL the group
    (the CLI and its trainer); Ray's daemons, which leave the group, are ended by pid if they outlive it."""
    import signal
    import time

    import psutil

    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 2 * LAUNCH_TIMEOUT_S
    while not (started.is_file() and marker in started.read_text(errors="replace")):
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before {started} showed {marker!r}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{started} never showed {marker!r}"
        time.sleep(1)
    descendants = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=RAY_EXIT_WAIT_S)
    for survivor in alive:
        survivor.kill()
    psutil.wait_procs(alive, timeout=RAY_EXIT_WAIT_S)


def samples_by_problem(records: Path) -> dict[str, list[str]]:
    """Each problem's generated outputs (by prompt text), in sample order; uids are fresh uuids per run."""
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    by_problem: dict[str, list[tuple[int, str]]] = {}
    for line in lines:
        by_problem.setdefault(line["input"], []).append((int(line["uid"].split("_")[-2]), line["output"]))
    return {prompt: [output for _, output in sorted(samples)] for prompt, samples in by_problem.items()}


@pytest.mark.slow
def test_checkpoint_merge_kill_resume_table_and_curves_end_to_end(tmp_path, fixture_benchmarks, tiny_main_job):
    """The README's flow on a checkpoint the CPU trainer wrote (the main job's, the session fixture
    tiny_main_job): merge it with verl's merger, evaluate two benchmarks, SIGKILL the run during the second,
    resume, then table and curves. Two evaluation trainer launches and one killed at its start.

    No uninterrupted reference run: on the CPU the outputs of two runs cannot be compared (see the comment at
    the per-sample check below), and the tiny random policy scores 0 everywhere, so a reference's scores would
    equal any run's. What resuming must guarantee is checked directly: the finished benchmark is kept byte for
    byte, the merge is not redone, and the result covers every problem with all its samples.
    Measured with its own demo launch and a reference run: 449 s and 517 s (two runs) on the 2-core machine.
    """
    import torch
    from safetensors.torch import load_file
    from torch.distributed.tensor import DTensor
    from transformers import AutoModelForCausalLM

    demo, run_dir = tiny_main_job["completed"], tiny_main_job["run_dir"]
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    step = run_dir / "checkpoints" / "global_step_1"
    actor = step / "actor"
    # What verl 0.9.1's CPU trainer (FSDP2 on gloo, one rank) wrote: DTensor shards and the merger's inputs.
    assert json.loads((actor / "fsdp_config.json").read_text()) == {"FSDP_version": 2, "world_size": 1}
    shard = torch.load(actor / "model_world_size_1_rank_0.pt", weights_only=False, map_location="cpu")
    assert shard and all(isinstance(tensor, DTensor) for tensor in shard.values())
    assert (actor / "huggingface" / "config.json").is_file() and (actor / "huggingface" / "tokenizer.json").is_file()

    cache, interrupted = tmp_path / "cache", tmp_path / "interrupted"
    second = interrupted / "benchmarks" / "amc23"
    kill_during(eval_run_command(step, fixture_benchmarks, interrupted, cache), second / "trainer.log", "ray init kwargs",
                tmp_path / "interrupted.log")

    # The merge (done once, before the first benchmark): one folder, marked finished, loadable by transformers,
    # equal to the trained shard (verl's merger writes bfloat16, the shard is float32).
    (merged,) = cache.iterdir()
    assert json.loads((merged / ".sgpo-merged.json").read_text())["step"] == 1
    model = AutoModelForCausalLM.from_pretrained(merged)
    merged_weights = load_file(merged / "model.safetensors")
    for name, tensor in shard.items():
        if name in merged_weights:
            assert torch.equal(merged_weights[name], tensor.full_tensor().to(torch.bfloat16)), name
    assert set(merged_weights) <= set(shard) and len(merged_weights) >= len(shard) - 1  # lm_head is tied to the embedding
    assert model.config.tie_word_embeddings
    merged_at = (merged / "model.safetensors").stat().st_mtime_ns

    first = interrupted / "benchmarks" / "aime24"
    assert (first / "done.json").is_file() and not (second / "done.json").exists()
    assert not (interrupted / "results.json").exists()
    kept = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in (first / "done.json", first / "generations" / "0.jsonl")}

    resumed = subprocess.run(eval_run_command(step, fixture_benchmarks, interrupted, cache), cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=3 * LAUNCH_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "aime24: done before, kept" in resumed.stdout + resumed.stderr
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in kept} == kept  # the first benchmark was not redone
    assert (second / "done.json").is_file()
    assert [path.name for path in cache.iterdir()] == [merged.name]  # no second merge
    assert (merged / "model.safetensors").stat().st_mtime_ns == merged_at

    got = json.loads((interrupted / "results.json").read_text())
    assert got["unfinished"] == []
    assert {name: score["problems"] for name, score in got["benchmarks"].items()} == {"aime24": 2, "amc23": 2}
    assert got["protocol"] == json.loads((interrupted / "protocol.json").read_text())
    assert got["protocol"]["sampling"]["samples"] == 2
    # Every problem with all its samples. The outputs of two runs are not comparable: the CPU rollout samples a whole
    # batch from one seeded torch generator, so an output depends on the batch row its request lands in, and verl's
    # agent loop sends the samples concurrently (docs/evaluation.md "On the CPU").
    for name in ("aime24", "amc23"):
        records = samples_by_problem(interrupted / "benchmarks" / name / "generations" / "0.jsonl")
        assert len(records) == 2 and all(len(outputs) == 2 for outputs in records.values()), name

    table = eval_cli("table", str(interrupted / "results.json"), "--format", "md", "csv", "--out", str(tmp_path / "table"))
    assert table.returncode == 0, table.stderr
    markdown = (tmp_path / "table.md").read_text()
    avg = {name: f"{got['benchmarks'][name]['avg']:.1f}" for name in ("aime24", "amc23")}
    assert "| Model | Method | Stage | AIME24 | AMC23 | Avg |" in markdown
    assert f"| tiny | SGPO |  | {avg['aime24']} | {avg['amc23']} | {got['macro_average']['avg']:.1f} |" in markdown
    assert (tmp_path / "table.csv").read_text().splitlines()[0] == "Model,Method,Stage,AIME24,AMC23,Avg,source"

    metrics = run_dir / "logs" / "metrics.jsonl"
    log_table = eval_cli("table", "--log", f"demo={metrics}")
    assert log_table.returncode == 0, log_table.stderr
    assert "| demo | validation | step 0 |" in log_table.stdout and "| demo | validation | step 1 |" in log_table.stdout
    curves = eval_cli("curves", "--log", f"demo={metrics}", "--out", str(tmp_path / "curves.png"))
    assert curves.returncode == 0, curves.stderr
    assert "training accuracy" in curves.stdout and "judge calls per step" in curves.stdout  # the rule judge ran
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
