"""The whole judge-training chain on a CPU machine: a small judge trained from scratch on the arithmetic task.

``bash run_scripts/judge_sft_cpu.sh`` (this module) runs, in ``--run-dir``:

1. **examples**: ``judge_arith`` train and test (data_prep/judge_data.py: the main job's task, the policy's
   format, errors injected at known steps; the test problems are not in train), written to ``data/``;
2. **base**: the untrained judge (recipe/sgpo/judge_sft/base_model.py, cached in cache/models);
3. **fit**: the files fitted to ``data.max_length`` (recipe/sgpo/judge_sft/fit.py; ``fit/``);
4. **before**: the judge benchmark (reward/judge/benchmark.py, ProcessBench's metrics) of the untrained
   judge on the held-out test split, served by the CPU vLLM server and judged through the ``openai`` backend;
5. **train**: verl 0.9.1's own SFT trainer (``python -m recipe.cpu_backend.sft +sft_platform=cpu``, config
   recipe/sgpo/config/judge_sft.yaml), checkpoint in ``checkpoints/global_step_<N>/huggingface``;
6. **after**: the same benchmark for the trained judge;

then prints the before/after table and the commands that serve the judge and train SGPO with it, and
writes ``summary.json`` (metrics, loss curve, times, machine). Every option is a flag (``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_RUN_DIR = REPO_ROOT / "outputs" / "judge_sft_cpu"
#: Name the trained judge is served under (what ``openai.model`` sends).
SERVED_NAME = "judge"
#: verl's per-step console line: ``step:N - ... - train/loss:X - ...`` and ``step:N - val/loss:X``.
_STEP_LINE = re.compile(r"step:(\d+) - .*?train/loss:([0-9.eE+-]+)")
_VAL_LINE = re.compile(r"step:(\d+) - val/loss:([0-9.eE+-]+)")
#: Lines of the trainer's log shown when it fails.
FAILURE_TAIL_LINES = 40


@dataclass
class JudgeRunOptions:
    """Settings of the CPU chain (each is a flag of the same name).

    Attributes:
        run_dir: output folder (examples, fitted files, checkpoints, logs, summary.json).
        steps: SFT optimizer steps. batch_size: conversations per step. lr: peak learning rate (AdamW,
            ``warmup_steps`` of linear warm-up, then verl's cosine decay to ``lr / 10``).
        train_size, test_size: ``judge_arith`` solutions generated for train (balanced afterwards) and test.
        seed: seed of the examples, the weights and verl's trainer.
        rationale: the examples' answer: ``none`` (the verdict line) or ``steps`` (one line per step up to
            the first wrong one, then the verdict; ``data_prep.judge_data.JudgeExample.answer``).
        max_length: the trainer's ``data.max_length`` (tokens of prompt + answer).
        max_tokens: the benchmark's cap on a judge answer (tokens; a verdict line takes about 5, a
            ``steps`` rationale about 15 a step).
        val_every: validation-loss interval in steps (0: only at the end).
    """

    run_dir: Path = DEFAULT_RUN_DIR
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 20
    train_size: int = 4000
    test_size: int = 400
    seed: int = 0
    rationale: str = "none"
    max_length: int = 320
    max_tokens: int = 96
    val_every: int = 100
    base_dir: Path | None = None
    extra_overrides: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for name in ("steps", "batch_size", "train_size", "test_size", "max_length", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")


def write_examples(options: JudgeRunOptions) -> tuple[Path, Path]:
    """``judge_arith`` train and test under ``run_dir/data`` (data_prep's pipeline, all-or-nothing)."""
    from data_prep.pipeline import PrepareOptions, prepare

    out = options.run_dir / "data"
    prepare(["judge_arith"], PrepareOptions(output_dir=out, judge_arith_train_size=options.train_size,
                                            judge_arith_test_size=options.test_size, judge_seed=options.seed,
                                            judge_rationale=options.rationale, show_progress=False))
    return out / "judge_arith" / "train.parquet", out / "judge_arith" / "test.parquet"


def trainer_command(options: JudgeRunOptions, base: Path, train: Path, test: Path) -> list[str]:
    """The SFT trainer's command line: verl's SFTTrainer through the CPU backend's entry point."""
    import pyarrow.parquet as pq

    steps_per_epoch = max(1, pq.read_metadata(train).num_rows // options.batch_size)
    return [
        sys.executable, "-m", "recipe.cpu_backend.sft", "+sft_platform=cpu",
        f"model.path={base}", f"data.train_files={train}", f"data.val_files={test}",
        f"data.max_length={options.max_length}", f"data.train_batch_size={options.batch_size}",
        f"data.micro_batch_size_per_gpu={options.batch_size}",
        f"optim.lr={options.lr}", f"optim.lr_warmup_steps={options.warmup_steps}",
        f"trainer.total_training_steps={options.steps}",
        # verl stops at total_epochs even before total_training_steps: enough epochs for every step
        f"trainer.total_epochs={math.ceil(options.steps / steps_per_epoch) + 1}",
        f"trainer.test_freq={options.val_every if options.val_every > 0 else -1}", "trainer.save_freq=-1",
        f"trainer.seed={options.seed}", f"engine.seed={options.seed}",
        f"trainer.default_local_dir={options.run_dir / 'checkpoints'}",
        f"hydra.run.dir={options.run_dir / 'hydra'}", *options.extra_overrides,
    ]


def run_trainer(command: list[str], log_path: Path, steps: int) -> dict[str, Any]:
    """Run the trainer with a progress bar fed by its step lines; returns the loss curve and the time.

    Raises:
        RuntimeError: the trainer exited non-zero (the message holds the end of its log).
    """
    from tqdm import tqdm

    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    losses: dict[int, float] = {}
    val_losses: dict[int, float] = {}
    started = time.perf_counter()
    with open(log_path, "w") as log, tqdm(total=steps, desc="training the judge", unit="step", disable=None) as bar:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                   cwd=REPO_ROOT, bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            for piece in line.split("\r"):
                if (match := _STEP_LINE.search(piece)) is not None:
                    step = int(match.group(1))
                    losses[step] = float(match.group(2))
                    bar.update(step - bar.n)
                    bar.set_postfix(loss=f"{losses[step]:.3f}")
                elif (match := _VAL_LINE.search(piece)) is not None:
                    val_losses[int(match.group(1))] = float(match.group(2))
        code = process.wait()
    if code != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-FAILURE_TAIL_LINES:])
        raise RuntimeError(f"the SFT trainer exited with {code}; end of {log_path}:\n{tail}")
    return {"train_loss": losses, "val_loss": val_losses, "train_s": time.perf_counter() - started}


def benchmark(model_dir: Path, test: Path, options: JudgeRunOptions, output: Path) -> dict[str, Any]:
    """The judge benchmark of ``model_dir`` on ``test``: a CPU vLLM server, the ``openai`` backend, greedy."""
    from reward.judge import JudgeConfig
    from reward.judge.benchmark import judge_file_samples, run_benchmark
    from reward.judge.cpu_server import CPUJudgeServer

    with CPUJudgeServer(model_dir, served_model_name=SERVED_NAME, log_path=output.with_suffix(".server.log")) as server:
        config = JudgeConfig.from_mapping({"backend": "openai", "openai": {
            "base_url": server.base_url, "model": SERVED_NAME, "max_tokens": options.max_tokens, "temperature": 0.0}})
        samples = judge_file_samples(test, config)
        return asyncio.run(run_benchmark(samples, config, concurrency=16, output=output, progress=True))


METRIC_ROWS = (("F1", "f1"), ("error accuracy", "error_acc"), ("correct accuracy", "correct_acc"),
               ("exact step", "exact"), ("not judged", "not_judged"))


def summary_table(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The before/after table (Markdown)."""
    lines = ["| judge benchmark (held-out judge_arith test) | before | after |", "|---|---|---|"]
    lines += [f"| {label} | {before[key]:.3f} | {after[key]:.3f} |" for label, key in METRIC_ROWS]
    return "\n".join(lines)


def use_commands(checkpoint: Path) -> str:
    """How to serve the trained judge and train SGPO with it (the README's chain)."""
    return (f"bash run_scripts/serve_judge_cpu.sh {checkpoint}      # http://127.0.0.1:8000/v1\n"
            "bash run_scripts/cpu_demo.sh --judge llm --judge-url http://127.0.0.1:8000/v1")


def run(options: JudgeRunOptions) -> dict[str, Any]:
    """Run the chain (module docstring); returns the summary (also written to ``run_dir/summary.json``)."""
    from recipe.sgpo.judge_sft.base_model import DEFAULT_DIR, build_judge_base
    from recipe.sgpo.judge_sft.fit import fit_files

    options.validate()
    options.run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print("1/6 examples: judge_arith", flush=True)
    train, test = write_examples(options)
    print("2/6 untrained judge", flush=True)
    base = build_judge_base(train, options.base_dir or DEFAULT_DIR)
    print("3/6 fitting the examples to data.max_length", flush=True)
    fitted = fit_files([train, test], base, options.max_length, options.run_dir / "fit", progress=False)
    print("4/6 judge benchmark before training", flush=True)
    before = benchmark(base, test, options, options.run_dir / "before.jsonl")
    print("5/6 training with verl's SFT trainer", flush=True)
    command = trainer_command(options, base, Path(fitted[0]["output"]), Path(fitted[1]["output"]))
    training = run_trainer(command, options.run_dir / "sft.log", options.steps)
    checkpoint = options.run_dir / "checkpoints" / f"global_step_{options.steps}" / "huggingface"
    print("6/6 judge benchmark after training", flush=True)
    after = benchmark(checkpoint, test, options, options.run_dir / "after.jsonl")
    summary = {
        "options": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(options).items()},
        "before": before, "after": after, "fit": fitted, "checkpoint": str(checkpoint), "trainer_command": command,
        "training": training, "wall_s": time.perf_counter() - started,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    (options.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    losses = training["train_loss"]
    print(f"\n{summary_table(before, after)}\n")
    print(f"training: {options.steps} steps in {training['train_s'] / 60:.1f} min; loss {losses[min(losses)]:.3f} -> "
          f"{losses[max(losses)]:.3f}; whole chain {summary['wall_s'] / 60:.1f} min; {options.run_dir / 'summary.json'}")
    print(f"\nuse the trained judge:\n{use_commands(checkpoint)}")
    return summary


def parse_args(argv: Sequence[str] | None = None) -> JudgeRunOptions:
    from data_prep.judge_data import RATIONALES

    defaults = JudgeRunOptions()
    parser = argparse.ArgumentParser(prog="bash run_scripts/judge_sft_cpu.sh", description=__doc__.split("\n\n")[0],
                                     epilog="Hydra overrides of the SFT trainer go after `--`.")
    parser.add_argument("--run-dir", type=Path, default=defaults.run_dir)
    for name in ("steps", "batch_size", "warmup_steps", "train_size", "test_size", "seed", "max_length",
                 "max_tokens", "val_every"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--rationale", choices=RATIONALES, default=defaults.rationale,
                        help="the answer trained: the verdict line, or one line per step then the verdict")
    parser.add_argument("--base-dir", type=Path, default=None, help="folder of the untrained judge (cached)")
    args, extra = parser.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    elif extra:
        parser.error(f"unknown arguments {extra}; trainer overrides go after `--`")
    return JudgeRunOptions(**{k: v for k, v in vars(args).items()}, extra_overrides=list(extra))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(parse_args(argv))
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
