"""Evaluate one checkpoint on benchmark parquet files through verl's own validation path, resumably.

For each benchmark file, one launch of ``python -m verl.trainer.main_ppo`` (the SGPO config) with
``trainer.val_only=True trainer.val_before_train=True``: verl generates ``val_kwargs.n`` samples per problem
with its rollout servers (vLLM on GPUs; the transformers rollout with ``--platform cpu``), scores each with
the SGPO reward manager (the project's outcome grader, reward/grader.py; the judge is off: validation is
never judged) and dumps every sample to ``trainer.validation_data_dir`` as ``0.jsonl``.

Layout of ``--out``::

    protocol.json                         everything that determines the numbers (written first)
    benchmarks/<name>/generations/0.jsonl verl's per-sample records
    benchmarks/<name>/done.json           written last: rows, samples, sha256 of 0.jsonl
    benchmarks/<name>/trainer.log         the trainer's output
    results.json                          scores of every finished benchmark (recipe/sgpo/eval/scores.py)

A benchmark with ``done.json`` is never redone; an interrupted one is redone from scratch. A folder whose
``protocol.json`` differs from the new run's protocol is refused (mixing protocols would mix numbers).
Before any generation (and before a checkpoint is merged): every parquet is checked to be ours, prompt +
response tokens are checked against the model's context, every prompt is checked to fit ``--max-prompt-tokens``
(verl's ``data.filter_overlong_prompts`` would otherwise drop it, and the benchmark would be scored over fewer
problems than it has), then the model is resolved (and merged once) and the trainer config is checked by
``recipe.sgpo.preflight``. After each launch the records must cover every row of the benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import pyarrow.parquet as pq

from data_prep.schema import DATA_SOURCE_PREFIX, ROW_SCHEMA
from data_prep.sources import sha256_of  # the hash data_prep writes into manifests
from recipe.sgpo.eval import checkpoint, scores
from recipe.sgpo.eval.families import SamplingDefaults

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = REPO_ROOT / "recipe" / "sgpo" / "config"
CONFIG_NAME = "sgpo_trainer"
PLUGIN_MODULE = "recipe.sgpo.plugin"
#: verl names the validation dump after the global step; a val-only run validates at step 0.
DUMP_NAME = "0.jsonl"
DONE_NAME = "done.json"
PROTOCOL_NAME = "protocol.json"
RESULTS_NAME = "results.json"
#: Packages whose versions go into the protocol.
VERSIONED_PACKAGES = ("verl", "vllm", "torch", "transformers", "math-verify")
#: Overlong rows named in the error (the count names them all).
OVERLONG_ROWS_SHOWN = 5


class EvalInputError(ValueError):
    """An input that stops the evaluation before any generation; the message names it and the fix."""


@dataclass
class EvalOptions:
    """One evaluation. Sampling values default to the family's (recipe/sgpo/eval/families.py)."""

    model: str
    benchmarks: list[Path]
    out: Path
    sampling: SamplingDefaults
    family: str
    method: str = "base model"
    model_label: str | None = None
    platform: str = "gpu"
    nnodes: int = 1
    gpus_per_node: int = 8
    cache_dir: Path = REPO_ROOT / "cache" / "eval"
    extra_overrides: list[str] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True)
class Benchmark:
    """A checked benchmark file: its name (data_source without ``sgpo/``), rows, sha256 and manifest."""

    name: str
    path: Path
    rows: int
    sha256: str
    manifest: dict[str, Any] | None


def check_benchmark(path: Path) -> Benchmark:
    """A data_prep parquet with one data_source; anything else is refused with the fix."""
    fix = "write benchmarks with `python -m data_prep write benchmarks --template <qwen_math|boxed> --out data/<root>`"
    path = check_row_file(path, "benchmark", fix, EvalInputError)
    sources = set(pq.read_table(path, columns=["data_source"]).column("data_source").to_pylist())
    if len(sources) != 1 or not next(iter(sources)).startswith(DATA_SOURCE_PREFIX):
        raise EvalInputError(f"benchmark {path}: data_source {sorted(sources)}, expected one 'sgpo/<name>' per file; {fix}")
    manifest_path = path.with_suffix(".manifest.json")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    digest = sha256_of(path)
    if manifest is not None and manifest.get("sha256") != digest:
        raise EvalInputError(f"benchmark {path}: its sha256 differs from {manifest_path.name}'s; the file was changed after data_prep wrote it. {fix}")
    rows = pq.ParquetFile(path).metadata.num_rows
    return Benchmark(next(iter(sources)).removeprefix(DATA_SOURCE_PREFIX), path, rows, digest, manifest)


def check_row_file(path: Path, label: str, fix: str, error: type[ValueError]) -> Path:
    """``path``, resolved, when it is a parquet file with our row schema (data_prep/schema.py); else ``error``
    naming it as ``label`` and the ``fix``. Shared by the evaluation and offline SGPO."""
    path = Path(path).resolve()
    if not path.is_file():
        raise error(f"{label} {path}: no such file; {fix}")
    try:
        schema = pq.read_schema(path)
    except Exception as problem:  # pyarrow raises several types for a non-parquet file
        raise error(f"{label} {path}: not a parquet file ({problem}); {fix}") from None
    if not schema.remove_metadata().equals(ROW_SCHEMA):
        missing = sorted(set(ROW_SCHEMA.names) - set(schema.names))
        raise error(f"{label} {path}: not our row schema (data_prep/schema.py; missing columns {missing}, or other types); {fix}")
    return path


def prompt_token_counts(benchmark: Benchmark, tokenizer_source: str, revision: str | None = None) -> list[int]:
    """Tokens of each row's prompt as verl counts them (:func:`chat_prompt_token_counts`)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, revision=revision)
    return chat_prompt_token_counts(tokenizer, pq.read_table(benchmark.path, columns=["prompt"]).column("prompt").to_pylist())


def chat_prompt_token_counts(tokenizer: Any, prompts: Sequence[Any]) -> list[int]:
    """Tokens of each chat prompt as verl counts them for ``data.filter_overlong_prompts`` (verl 0.9.1
    ``RLHFDataset.maybe_filter_out_long_prompts``: the chat template applied with the generation prompt)."""
    from verl.utils.tokenizer import normalize_token_ids

    return [len(normalize_token_ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)))
            for prompt in prompts]


def check_prompt_lengths(benchmarks: Sequence[Benchmark], tokenizer_source: str, revision: str | None, max_prompt_tokens: int) -> None:
    """Stop when a prompt is longer than ``max_prompt_tokens``: verl would drop its row, and the benchmark's
    scores would be over fewer problems than the benchmark has (not comparable with published numbers)."""
    for benchmark in benchmarks:
        counts = prompt_token_counts(benchmark, tokenizer_source, revision)
        overlong = [(row, count) for row, count in enumerate(counts) if count > max_prompt_tokens]
        if overlong:
            shown = ", ".join(f"row {row}: {count}" for row, count in overlong[:OVERLONG_ROWS_SHOWN])
            raise EvalInputError(
                f"benchmark {benchmark.path}: {len(overlong)} of {len(counts)} prompts are longer than --max-prompt-tokens "
                f"{max_prompt_tokens} ({shown} tokens); verl would drop them and score the rest. Raise --max-prompt-tokens "
                f"to {max(count for _, count in overlong)} or more"
            )


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_protocol(options: EvalOptions, source: checkpoint.ModelSource, model_key: str | None, benchmarks: Sequence[Benchmark]) -> dict[str, Any]:
    """Everything that determines the numbers; a resumed run must have the same."""
    templates = {b.name: (b.manifest or {}).get("template") for b in benchmarks}
    return {
        "model": options.model,
        "model_label": options.model_label or Path(options.model.rstrip("/")).name,
        "model_kind": source.kind,
        "model_revision": source.revision,
        "model_content_key": model_key,
        "step": source.step,
        "method": options.method,
        "family": options.family,
        "sampling": options.sampling.as_dict(),
        "platform": options.platform,
        "benchmarks": {b.name: {"file": str(b.path), "rows": b.rows, "sha256": b.sha256,
                                "manifest_sha256": (b.manifest or {}).get("sha256")} for b in benchmarks},
        "templates": templates,
        "grader": "reward/grader.py (SGPO reward manager, reward.reward_manager.name=sgpo)",
        "versions": package_versions(),
        "extra_overrides": list(options.extra_overrides),
    }


def trainer_overrides(options: EvalOptions, model_path: str, benchmark: Benchmark, dump_dir: Path) -> list[str]:
    """Hydra overrides of one benchmark's val-only launch (on top of sgpo_trainer.yaml)."""
    s = options.sampling
    overrides = [
        f"actor_rollout_ref.model.path={model_path}",
        # verl builds a training dataloader even for val_only; the benchmark itself serves (never trained on).
        f"data.train_files={benchmark.path}",
        f"data.val_files={benchmark.path}",
        f"data.max_prompt_length={s.max_prompt_tokens}",
        f"data.max_response_length={s.max_response_tokens}",
        "data.filter_overlong_prompts=True",
        f"data.seed={s.seed}",
        f"actor_rollout_ref.rollout.seed={s.seed}",
        f"actor_rollout_ref.rollout.val_kwargs.n={s.samples}",
        "actor_rollout_ref.rollout.val_kwargs.do_sample=True",
        f"actor_rollout_ref.rollout.val_kwargs.temperature={s.temperature}",
        f"actor_rollout_ref.rollout.val_kwargs.top_p={s.top_p}",
        f"actor_rollout_ref.rollout.val_kwargs.top_k={s.top_k}",
        "trainer.val_only=True",
        "trainer.val_before_train=True",
        "trainer.resume_mode=disable",
        f"trainer.validation_data_dir={dump_dir}",
        "trainer.logger=[console]",
        f"trainer.nnodes={options.nnodes}",
        "reward.sgpo.judge_scope=off",  # validation is graded, never judged
    ]
    if options.platform == "cpu":
        overrides = ["+platform=cpu"] + overrides
    else:
        overrides += ["actor_rollout_ref.rollout.name=vllm", f"trainer.n_gpus_per_node={options.gpus_per_node}"]
    return overrides + list(options.extra_overrides)


def trainer_env(options: EvalOptions) -> dict[str, str]:
    return platform_env(options.platform)


def platform_env(platform: str) -> dict[str, str]:
    """The environment of a trainer launch on ``platform`` (``gpu`` or ``cpu``) from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if platform == "cpu":
        # As recipe/sgpo/cpu_demo.py: the CPU rollout's Ray actor imports recipe.cpu_backend itself; the
        # plugin variable on top re-enters that import half-way (a circular ImportError in the actor).
        env.update(VERL_PLATFORM="cpu", RAY_USAGE_STATS_ENABLED="0", TOKENIZERS_PARALLELISM="false")
    else:
        env["VERL_USE_EXTERNAL_MODULES"] = PLUGIN_MODULE  # as run_scripts/common.sh: every GPU worker finds the recipe
    return env


def trainer_command(overrides: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={CONFIG_DIR}", f"--config-name={CONFIG_NAME}", *overrides]


def preflight(options: EvalOptions, overrides: Sequence[str]) -> None:
    completed = subprocess.run([sys.executable, "-m", "recipe.sgpo.preflight", *overrides], cwd=REPO_ROOT,
                               env=trainer_env(options), capture_output=True, text=True)
    if completed.returncode != 0:
        raise EvalInputError(f"the trainer config was refused by recipe.sgpo.preflight:\n{completed.stdout[-3000:]}{completed.stderr[-2000:]}")


def differing_keys(previous: dict[str, Any], new: dict[str, Any], ignored: Sequence[str] = ()) -> list[str]:
    """Keys whose values differ between two protocols (a key missing on one side differs), sorted."""
    return sorted(k for k in set(previous) | set(new) if k not in ignored and previous.get(k) != new.get(k))


def check_protocol(out: Path, protocol: dict[str, Any]) -> None:
    """Write protocol.json, or refuse when the folder holds a different protocol."""
    path = out / PROTOCOL_NAME
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = differing_keys(previous, protocol)
        if changed:
            raise EvalInputError(f"{out} holds an evaluation with another protocol (differs in {changed}); give a new --out, "
                                 "or delete the folder to start over")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(protocol, indent=1, sort_keys=True))


def benchmark_done(folder: Path, benchmark: Benchmark, samples: int) -> bool:
    """True when the benchmark's records are complete and unchanged since they were written."""
    done, dump = folder / DONE_NAME, folder / "generations" / DUMP_NAME
    if not done.is_file() or not dump.is_file():
        return False
    record = json.loads(done.read_text())
    return record.get("benchmark_sha256") == benchmark.sha256 and record.get("records_sha256") == sha256_of(dump)


def run_benchmark(options: EvalOptions, model_path: str, benchmark: Benchmark, folder: Path) -> None:
    """One val-only trainer launch; done.json only when every row has all its samples."""
    dump_dir = folder / "generations"
    for stale in (folder / DONE_NAME, dump_dir / DUMP_NAME):
        stale.unlink(missing_ok=True)
    dump_dir.mkdir(parents=True, exist_ok=True)
    command = trainer_command(trainer_overrides(options, model_path, benchmark, dump_dir))
    with (folder / "trainer.log").open("w") as log:
        status = subprocess.run(command, cwd=REPO_ROOT, env=trainer_env(options), stdout=log, stderr=subprocess.STDOUT).returncode
    dump = dump_dir / DUMP_NAME
    if status != 0 or not dump.is_file():
        raise RuntimeError(f"{benchmark.name}: the trainer failed (exit {status}); log: {folder / 'trainer.log'}")
    problems = scores.read_problems(dump)
    if len(problems) != benchmark.rows:  # a row verl dropped would silently shrink the benchmark
        raise RuntimeError(f"{benchmark.name}: {dump} has records of {len(problems)} problems, the benchmark has {benchmark.rows} rows; "
                           f"see 'filter dataset len' in {folder / 'trainer.log'}")
    expected = options.sampling.samples
    if any(len(p.correct) != expected for p in problems):
        raise RuntimeError(f"{benchmark.name}: {dump} has not {expected} samples per problem; log: {folder / 'trainer.log'}")
    (folder / DONE_NAME).write_text(json.dumps({"benchmark_sha256": benchmark.sha256, "records_sha256": sha256_of(dump),
                                                "problems": len(problems), "rows": benchmark.rows, "samples": expected}, indent=1))


def prepare(options: EvalOptions) -> tuple[str, dict[str, Any], list[Benchmark]]:
    """Every check that can fail, before any generation: model, benchmarks, context, protocol."""
    source = checkpoint.detect(options.model)
    benchmarks = [check_benchmark(path) for path in options.benchmarks]
    names = [b.name for b in benchmarks]
    if len(set(names)) != len(names):
        raise EvalInputError(f"benchmarks {names}: the same benchmark twice; give each file once")
    if source.kind == "hub" and source.revision:
        raise EvalInputError(f"--model {options.model}: verl loads hub models at their default revision only; pin one with "
                             f"`huggingface-cli download {source.location} --revision {source.revision} --local-dir <folder>` and give the folder")
    # The checks that need only the model's config and tokenizer come before a (long) merge.
    config_path = str(Path(source.location) / "huggingface") if source.kind == "fsdp" else source.location
    s = options.sampling
    checkpoint.check_context(config_path, s.max_prompt_tokens, s.max_response_tokens)
    check_prompt_lengths(benchmarks, config_path, source.revision, s.max_prompt_tokens)
    model_key = None
    if source.kind == "fsdp":
        if options.dry_run:
            model_path, model_key = f"<merged {source.location}>", checkpoint.content_key(Path(source.location))
        else:
            merged, model_key = checkpoint.merged_folder(source, options.cache_dir)
            model_path = str(merged)
    else:
        model_path = source.location
        if source.kind == "hf_folder":
            model_key = checkpoint.content_key(Path(source.location))
    return model_path, build_protocol(options, source, model_key, benchmarks), benchmarks


def evaluate(options: EvalOptions) -> Path | list[str]:
    """Run every unfinished benchmark, then score all; returns results.json (or, dry run, the first command)."""
    from tqdm import tqdm

    model_path, protocol, benchmarks = prepare(options)
    first_overrides = trainer_overrides(options, model_path, benchmarks[0], options.out / "benchmarks" / benchmarks[0].name / "generations")
    if options.dry_run:
        return trainer_command(first_overrides)
    preflight(options, first_overrides)
    check_protocol(options.out, protocol)
    for benchmark in tqdm(benchmarks, desc="generating (one trainer launch per benchmark)", unit="benchmark"):
        folder = options.out / "benchmarks" / benchmark.name
        folder.mkdir(parents=True, exist_ok=True)
        if benchmark_done(folder, benchmark, options.sampling.samples):
            tqdm.write(f"[sgpo-eval] {benchmark.name}: done before, kept")
            continue
        run_benchmark(options, model_path, benchmark, folder)
    return score_folder(options.out)


def score_folder(out: Path) -> Path:
    """Score every finished benchmark of an evaluation folder into results.json."""
    from tqdm import tqdm

    out = Path(out)
    protocol_path = out / PROTOCOL_NAME
    if not protocol_path.is_file():
        raise EvalInputError(f"{out}: no {PROTOCOL_NAME}; give the --out folder of `python -m recipe.sgpo.eval run`")
    protocol = json.loads(protocol_path.read_text())
    finished = [name for name in protocol["benchmarks"] if (out / "benchmarks" / name / DONE_NAME).is_file()]
    if not finished:
        raise EvalInputError(f"{out}: no finished benchmark yet; run `python -m recipe.sgpo.eval run` to completion")
    results = [scores.score_problems(name, scores.read_problems(out / "benchmarks" / name / "generations" / DUMP_NAME))
               for name in tqdm(finished, desc="scoring", unit="benchmark")]
    document = scores.results_document(protocol, results)
    document["unfinished"] = [name for name in protocol["benchmarks"] if name not in finished]
    path = out / RESULTS_NAME
    path.write_text(json.dumps(document, indent=1))
    return path
