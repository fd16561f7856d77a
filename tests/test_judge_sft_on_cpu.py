"""Judge training (recipe/sgpo/judge_sft, recipe/cpu_backend/sft.py): the untrained judge, fitting examples to
the trainer's length, verl's own SFT dataset and config on our files, the launch check and the 7B script's dry
run, and (slow) the whole CPU chain with verl's real SFT trainer and a real CPU vLLM judge server.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_prep.pipeline import PrepareOptions, prepare
from recipe.sgpo.judge_sft import base_model, check, fit
from recipe.sgpo.judge_sft.base_model import JudgeBaseConfig, build_judge_base, template_passages

REPO = Path(__file__).resolve().parents[1]
SMALL_BASE = JudgeBaseConfig(tokenizer_texts=300)


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("judge_sft") / "data"
    prepare(["judge_arith"], PrepareOptions(output_dir=out, judge_arith_train_size=400, judge_arith_test_size=40,
                                            show_progress=False))
    return out / "judge_arith"


@pytest.fixture(scope="module")
def base(examples, tmp_path_factory) -> Path:
    return build_judge_base(examples / "train.parquet", tmp_path_factory.mktemp("base") / "judge", SMALL_BASE)


# -- the untrained judge ---------------------------------------------------------------------------------------------
def test_the_template_passages_are_single_tokens_and_a_prompt_is_short(base, examples):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    for passage in template_passages("v1"):
        assert len(tokenizer(passage, add_special_tokens=False)["input_ids"]) == 1
    messages = pq.read_table(examples / "test.parquet").column("messages").to_pylist()
    lengths = [fit.token_length(tokenizer, m) for m in messages]
    assert max(lengths) < 256  # about a thousand bytes of prompt in under a couple hundred tokens
    # the tokenizer round-trips the rendered conversation exactly (byte-level BPE)
    ids = tokenizer.apply_chat_template(messages[0], tokenize=True, return_dict=False)
    from data_prep.arith_policy import render_chatml

    assert tokenizer.decode(ids) == render_chatml(messages[0][:1]) + messages[0][1]["content"] + "<|im_end|>\n"


def test_the_untrained_judge_is_cached_and_deterministic(base, examples, tmp_path):
    marker = base / base_model.DONE_MARKER
    before = marker.stat().st_mtime_ns
    assert build_judge_base(examples / "train.parquet", base, SMALL_BASE) == base
    assert marker.stat().st_mtime_ns == before  # reused, not rebuilt
    again = build_judge_base(examples / "train.parquet", tmp_path / "again", SMALL_BASE)
    assert (again / "model.safetensors").read_bytes() == (base / "model.safetensors").read_bytes()
    assert json.loads((again / base_model.DONE_MARKER).read_text())["settings"]["texts_sha256"] == \
        json.loads(marker.read_text())["settings"]["texts_sha256"]


# -- fitting to data.max_length --------------------------------------------------------------------------------------
def test_rows_longer_than_max_length_are_dropped_and_counted(base, examples, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    messages = pq.read_table(examples / "test.parquet").column("messages").to_pylist()
    lengths = sorted(fit.token_length(tokenizer, m) for m in messages)
    cut = lengths[len(lengths) // 2]
    report = fit.fit_file(examples / "test.parquet", tokenizer, cut + fit.MARGIN_TOKENS, tmp_path, progress=False)
    kept = pq.read_table(report["output"])
    assert report["kept"] == kept.num_rows == sum(length <= cut for length in lengths)
    assert report["dropped_too_long"] == len(lengths) - report["kept"] > 0
    assert max(fit.token_length(tokenizer, m) for m in kept.column("messages").to_pylist()) <= cut
    with pytest.raises(ValueError, match="no row fits"):
        fit.fit_file(examples / "test.parquet", tokenizer, lengths[0] - 1 + fit.MARGIN_TOKENS, tmp_path, progress=False)
    # several files: one that fails leaves none written (the test file fits the cut, its long rows do not)
    table = pq.read_table(examples / "test.parquet")
    long_rows = [i for i, m in enumerate(table.column("messages").to_pylist()) if fit.token_length(tokenizer, m) > cut]
    (tmp_path / "long").mkdir()
    pq.write_table(table.take(long_rows), tmp_path / "long" / "test.parquet")
    with pytest.raises(ValueError, match="long/test.parquet: no row fits"):
        fit.fit_files_with(tokenizer, [examples / "test.parquet", tmp_path / "long" / "test.parquet"],
                           cut + fit.MARGIN_TOKENS, tmp_path / "all", progress=False)
    assert not (tmp_path / "all").exists()


def test_fit_refuses_a_file_that_is_not_judge_examples(base, tmp_path):
    prepare(["arith"], PrepareOptions(output_dir=tmp_path, arith_train_size=4, arith_val_size=2, show_progress=False))
    run = subprocess.run([sys.executable, "-m", "recipe.sgpo.judge_sft.fit", "--model", str(base), "--max-length",
                          "256", "--out", str(tmp_path / "fit"), str(tmp_path / "arith" / "train.parquet")],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 2 and "no 'messages' column" in run.stderr


# -- verl's own dataset and config on our files ------------------------------------------------------------------------
def test_verls_sft_dataset_puts_the_loss_on_the_verdict_only(base, examples):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    config = check.compose(["data.train_files=x", "data.max_length=256"]).data
    tokenizer = AutoTokenizer.from_pretrained(base)
    dataset = MultiTurnSFTDataset(parquet_files=str(examples / "test.parquet"), tokenizer=tokenizer,
                                  config=OmegaConf.merge(config, {"pad_mode": "right"}))
    rows = pq.read_table(examples / "test.parquet").to_pylist()
    for index in (0, 1, 2, 3):
        item = dataset[index]
        trained = item["input_ids"][item["loss_mask"].bool()]
        # the assistant turn: the verdict and its end-of-turn token (verl also trains the newline after it)
        assert tokenizer.decode(trained).strip() == rows[index]["messages"][1]["content"] + "<|im_end|>"


def test_the_check_composes_verls_config_and_refuses_what_cannot_work(examples):
    train = str(examples / "train.parquet")
    config = check.compose([f"data.train_files={train}"])
    assert config.data.messages_key == "messages" and "hf_model" in config.checkpoint.save_contents
    assert check.problems(config, gpus=8, require_files=True) == []
    refusals = {
        "data.train_batch_size=60": "not a multiple of the 8 GPUs",
        "checkpoint.save_contents=[model,optimizer]": "lacks hf_model",
        "trainer.total_training_steps=100": "would stop verl early",  # 400 rows / 64 = 6 steps an epoch, 2 epochs
    }
    for override, message in refusals.items():
        found = check.problems(check.compose([f"data.train_files={train}", override]), gpus=8, require_files=True)
        assert len(found) == 1 and message in found[0], (override, found)
    missing = check.problems(check.compose(["data.train_files=/nonexistent.parquet"]), gpus=1, require_files=True)
    assert "not found" in missing[0]
    assert "not set" in check.problems(check.compose([]), gpus=1, require_files=False)[0]


def test_the_7b_scripts_dry_run_prints_a_trainer_command_that_composes_in_verl(tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "STORAGE_DIR": str(tmp_path)}
    run = subprocess.run(["bash", "run_scripts/judge_sft_qwen2.5-7b.sh", "optim.lr=2e-5"], capture_output=True,
                         text=True, timeout=300, cwd=REPO, env=env)
    assert run.returncode == 0, run.stderr
    assert "[judge-sft check] ok" in run.stderr
    fit_line, train_line = run.stdout.strip().splitlines()[-2:]
    assert "recipe.sgpo.judge_sft.fit" in fit_line and "--max-length 4096" in fit_line
    command = shlex.split(train_line)
    assert command[:5] == ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=8", "-m"]
    assert command[5] == "verl.trainer.sft_trainer" and "--config-name=judge_sft" in command
    overrides = [arg for arg in command[6:] if not arg.startswith("--")]
    config = check.compose(overrides)
    assert config.optim.lr == 2e-5  # the script's own arguments come last and win
    assert config.engine.strategy == "fsdp2" and config.model.path == "Qwen/Qwen2.5-7B-Instruct"
    assert list(config.data.train_files) == [f"{tmp_path}/judge_sft/qwen2.5-7b/fit/judge_prm800k-train.parquet",
                                             f"{tmp_path}/judge_sft/qwen2.5-7b/fit/judge_math_shepherd-train.parquet"]
    from verl.utils.config import omega_conf_to_dataclass

    engine, optim = omega_conf_to_dataclass(config.engine), omega_conf_to_dataclass(config.optim)
    assert engine.strategy == "fsdp2" and optim.lr_scheduler_type == "cosine"


# -- the benchmark script and its table -------------------------------------------------------------------------------
def _benchmark_script(settings: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, **settings}
    return subprocess.run(["bash", "run_scripts/judge_benchmark.sh"], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=env)


def test_the_benchmark_script_measures_every_set_and_tabulates_runs_side_by_side(examples, tmp_path):
    from reward.judge.benchmark_table import read_run, table

    rows = pq.read_metadata(examples / "test.parquet").num_rows
    run = _benchmark_script({"JUDGE_BACKEND": "rule", "DATA_DIR": str(examples.parent), "JUDGE_SETS": "judge_arith/test",
                             "LIMIT": "12", "OUT_DIR": str(tmp_path / "rule")})
    assert run.returncode == 0, run.stderr
    measured = read_run(tmp_path / "rule")
    assert set(measured) == {"judge_arith_test", "champ"}
    assert measured["judge_arith_test"]["samples"] == min(12, rows) and measured["judge_arith_test"]["f1"] == 1.0
    assert measured["champ"]["dataset"] == "champ" and measured["champ"]["samples"] == 12
    assert len((tmp_path / "rule" / "champ.jsonl").read_text().splitlines()) == 12
    assert "| judge_arith_test | 12 | 1.000 |" in run.stdout
    # a set one run lacks is shown as missing, not as a zero
    other = {"judge_arith_test": {**measured["judge_arith_test"], "f1": 0.25}}
    text = table({"before": other, "after": measured})
    assert "| judge_arith_test | 12 | 0.250 | 1.000 |" in text and "| champ | 12 | – |" in text


def test_the_benchmark_script_refuses_a_missing_endpoint_or_set_before_judging(examples, tmp_path):
    run = _benchmark_script({"OUT_DIR": str(tmp_path / "x"), "JUDGE_URL": ""})
    assert run.returncode == 2 and "JUDGE_URL is not set" in run.stderr
    run = _benchmark_script({"OUT_DIR": str(tmp_path / "x"), "JUDGE_URL": "http://127.0.0.1:9/v1", "JUDGE_MODEL": "j",
                             "DATA_DIR": str(examples.parent), "JUDGE_SETS": "judge_arith/test judge_prm800k/test"})
    assert run.returncode == 2 and "judge_prm800k/test.parquet not found" in run.stderr
    assert "python -m data_prep write judge_prm800k" in run.stderr and not (tmp_path / "x").exists()
    dry = _benchmark_script({"DRY_RUN": "1", "OUT_DIR": str(tmp_path / "x"), "JUDGE_URL": "http://h:8000/v1",
                             "JUDGE_MODEL": "j"})
    commands = dry.stdout.strip().splitlines()
    assert dry.returncode == 0 and len(commands) == 8  # 7 held-out sets by default, then CHAMP
    assert all("openai.base_url=http://h:8000/v1" in command for command in commands)
    assert "--dataset champ" in commands[-1] and "judge_processbench/omnimath.parquet" in commands[-2]


# -- the whole chain on the CPU (verl's real SFT trainer, a real vLLM server) -------------------------------------------
@pytest.mark.slow
def test_the_cpu_chain_trains_a_judge_with_verls_sft_trainer_and_benchmarks_it_before_and_after(tmp_path):
    from recipe.sgpo.judge_sft.cpu_run import JudgeRunOptions, run

    options = JudgeRunOptions(run_dir=tmp_path / "run", steps=24, batch_size=16, train_size=400, test_size=40,
                              val_every=12, base_dir=tmp_path / "base")
    summary = run(options)
    losses = {int(k): v for k, v in summary["training"]["train_loss"].items()}
    assert sorted(losses) == list(range(1, 25))  # every step of verl's trainer was seen
    assert losses[24] < losses[1] / 2  # the verdict format is learned within a few dozen steps
    assert set(summary["training"]["val_loss"]) == {12, 24}
    checkpoint = Path(summary["checkpoint"])
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "tokenizer.json").is_file()
    for stage in ("before", "after"):
        metrics = summary[stage]
        assert metrics["samples"] == 40 and 0.0 <= metrics["f1"] <= 1.0
        lines = (tmp_path / "run" / f"{stage}.jsonl").read_text().splitlines()
        assert len(lines) == 40
    # random weights write no verdict line; after 24 steps the judge answers in the verdict format
    assert summary["before"]["not_judged"] > 0.9
    assert summary["after"]["not_judged"] < 0.1


def test_the_cpu_server_fits_its_context_to_the_models_positions(base, tmp_path):
    from reward.judge.cpu_server import DEFAULT_MAX_MODEL_LEN, default_max_model_len

    # the untrained judge has 1,024 positions: a longer context would be refused by vLLM at start-up
    assert default_max_model_len(base) == json.loads((base / "config.json").read_text())["max_position_embeddings"]
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 131072}))
    assert default_max_model_len(tmp_path) == DEFAULT_MAX_MODEL_LEN < 131072
