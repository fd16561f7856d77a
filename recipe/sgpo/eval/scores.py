"""Scores of one evaluation from verl's per-sample validation records.

Input: the ``{step}.jsonl`` that verl 0.9.1's V1 trainer writes to ``trainer.validation_data_dir``, one line
per sample with ``input``, ``output``, ``gts``, ``score``, ``uid`` (``<problem uuid>_<sample>_<turn>``) and every
extra-info key of the SGPO reward manager, of which ``acc`` (1.0 correct, else 0.0, from reward/grader.py)
and ``pred`` (the extracted final answer) are used here.

Per benchmark, with n samples per problem and c_i correct samples of problem i (P problems):

* Avg@n      = 100 · mean_i c_i / n                        (percent; equals unbiased pass@1)
* pass@k     = 100 · mean_i [1 − C(n − c_i, k) / C(n, k)]  (Chen et al. 2021, unbiased for k ≤ n), computed
  as 1 − ∏_{j = n−c+1}^{n} (1 − k / j), which never forms a large binomial coefficient
* maj@n      = 100 · mean_i [the most frequent non-empty extracted answer of problem i is correct]
* std        = sample standard deviation (ddof 1) over the n sample columns of the column accuracy
  100 · mean_i correct[i, j]  (percentage points; the seed-to-seed spread of a one-sample evaluation)
* CI         = percentile bootstrap over problems of Avg@n (BOOTSTRAP_RESAMPLES resamples, seeded)

Not verl's ``best@k``: verl bootstraps k samples with replacement, which is biased as a pass@k estimate.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

#: The k of the pass@k columns (those ≤ n are reported).
PASS_AT_K = (1, 2, 4, 8, 16)
#: Bootstrap resamples of the problems for the confidence interval of Avg@n.
BOOTSTRAP_RESAMPLES = 2000
#: Two-sided confidence level of the bootstrap interval.
CONFIDENCE_LEVEL = 0.95
#: Seed of the bootstrap, so a result file is reproducible.
BOOTSTRAP_SEED = 0
#: Keys a validation record must carry (verl's dump plus the SGPO reward manager's extra info).
REQUIRED_KEYS = ("uid", "acc", "pred", "gts")
#: Hex digits of a problem's prompt id in the per-problem results (64 bits: no collision in practice).
PROMPT_ID_HEX = 16
#: Percent per unit.
PERCENT = 100.0


class RecordsError(ValueError):
    """Validation records that cannot be scored; the message names the file, the line and the fix."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem: 1 − C(n−c, k)/C(n, k), as the stable product 1 − ∏_{j=n−c+1}^{n}(1 − k/j).

    Args:
        n: samples drawn; c: correct among them (0 ≤ c ≤ n); k: attempts (1 ≤ k ≤ n).
    Returns:
        The probability in [0, 1] that at least one of k samples drawn without replacement is correct.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def majority_correct(preds: Sequence[str], correct: Sequence[int]) -> int:
    """1 if the most frequent non-empty extracted answer is correct, else 0 (no answer at all: 0).

    Answers are compared as stripped strings; a tie goes to the answer that appeared first. The vote's
    correctness is that of the first sample giving the answer (the grader is deterministic per answer).
    """
    answers = [pred.strip() for pred in preds]
    votes = Counter(answer for answer in answers if answer)
    if not votes:
        return 0
    top = max(votes.values())
    winner = next(answer for answer in answers if answer and votes[answer] == top)
    return int(correct[answers.index(winner)])


@dataclass
class Problem:
    """All samples of one problem, in sample order."""

    uid: str
    prompt: str
    ground_truth: str
    correct: list[int] = field(default_factory=list)
    preds: list[str] = field(default_factory=list)


def _problem_uid(uid: str) -> tuple[str, int]:
    """(problem uuid, sample index) from verl's dump key ``<uuid>_<session>_<turn>``."""
    parts = str(uid).rsplit("_", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return str(uid), 0
    return parts[0], int(parts[1])


def read_problems(path: Path) -> list[Problem]:
    """The problems of one validation jsonl, ordered by prompt text (verl's uids are random per run, so this
    order is the same for every evaluation of a file); each must have the same number of samples."""
    path = Path(path)
    if not path.is_file():
        raise RecordsError(f"{path}: no such validation file; run `python -m recipe.sgpo.eval run` first")
    problems: dict[str, Problem] = {}
    samples: dict[str, list[tuple[int, int, str]]] = {}
    with path.open() as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RecordsError(f"{path}:{line_number}: not JSON ({error}); the file is damaged, re-run that benchmark") from None
            missing = [key for key in REQUIRED_KEYS if key not in record]
            if missing:
                raise RecordsError(
                    f"{path}:{line_number}: missing {missing}; score only files written by verl's validation with "
                    "the SGPO reward manager (reward.reward_manager.name=sgpo), e.g. by `python -m recipe.sgpo.eval run`"
                )
            key, sample = _problem_uid(record["uid"])
            if key not in problems:
                problems[key] = Problem(key, str(record.get("input", "")), str(record["gts"]))
                samples[key] = []
            samples[key].append((sample, int(float(record["acc"]) > 0), str(record["pred"] or "")))
    if not problems:
        raise RecordsError(f"{path}: no records; the evaluation of this benchmark did not finish, re-run it")
    for key, problem in problems.items():
        ordered = sorted(samples[key])
        problem.correct = [acc for _, acc, _ in ordered]
        problem.preds = [pred for _, _, pred in ordered]
    counts = Counter(len(problem.correct) for problem in problems.values())
    if len(counts) > 1:
        raise RecordsError(f"{path}: problems have different sample counts {dict(counts)}; re-run that benchmark")
    return sorted(problems.values(), key=lambda problem: (problem.prompt, problem.ground_truth))


def prompt_id(prompt: str) -> str:
    """A stable id of a problem across runs: the first PROMPT_ID_HEX hex digits of the prompt's sha256."""
    return hashlib.sha256(prompt.encode()).hexdigest()[:PROMPT_ID_HEX]


@dataclass
class BenchmarkScore:
    """Scores of one benchmark (percent, except counts)."""

    benchmark: str
    problems: int
    samples_per_problem: int
    avg: float
    pass_at_k: dict[str, float]
    maj: float
    std: float
    ci_low: float
    ci_high: float
    per_problem: list[dict[str, Any]]


def bootstrap_interval(per_problem_accuracy: np.ndarray) -> tuple[float, float]:
    """Percentile bootstrap (over problems) of the mean accuracy, at CONFIDENCE_LEVEL, in percent."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    count = len(per_problem_accuracy)
    picks = rng.integers(0, count, size=(BOOTSTRAP_RESAMPLES, count))
    means = per_problem_accuracy[picks].mean(axis=1)
    tail = (1.0 - CONFIDENCE_LEVEL) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return PERCENT * float(low), PERCENT * float(high)


def score_problems(benchmark: str, problems: Sequence[Problem]) -> BenchmarkScore:
    """Avg@n, pass@k, maj@n, column std and bootstrap CI of one benchmark (formulas: module docstring)."""
    n = len(problems[0].correct)
    matrix = np.array([problem.correct for problem in problems], dtype=float)  # problems × samples
    per_problem_accuracy = matrix.mean(axis=1)
    ks = [k for k in PASS_AT_K if k <= n]
    pass_k = {
        str(k): PERCENT * float(np.mean([pass_at_k(n, sum(p.correct), k) for p in problems])) for k in ks
    }
    majority = [majority_correct(p.preds, p.correct) for p in problems]
    column_accuracy = PERCENT * matrix.mean(axis=0)
    ci_low, ci_high = bootstrap_interval(per_problem_accuracy)
    per_problem = [
        {"prompt_id": prompt_id(p.prompt), "ground_truth": p.ground_truth, "correct": sum(p.correct), "samples": n,
         "maj_correct": m, "answers": dict(Counter(pred.strip() for pred in p.preds if pred.strip()))}
        for p, m in zip(problems, majority)
    ]
    return BenchmarkScore(
        benchmark=benchmark,
        problems=len(problems),
        samples_per_problem=n,
        avg=PERCENT * float(per_problem_accuracy.mean()),
        pass_at_k=pass_k,
        maj=PERCENT * float(np.mean(majority)),
        std=float(np.std(column_accuracy, ddof=1)) if n > 1 else 0.0,
        ci_low=ci_low,
        ci_high=ci_high,
        per_problem=per_problem,
    )


def macro_average(scores: Iterable[BenchmarkScore]) -> dict[str, Any]:
    """Unweighted mean over benchmarks of Avg@n, maj@n and each pass@k every benchmark has (percent)."""
    scores = list(scores)
    if not scores:
        return {}
    shared_k = set.intersection(*(set(score.pass_at_k) for score in scores))
    return {
        "benchmarks": [score.benchmark for score in scores],
        "avg": float(np.mean([score.avg for score in scores])),
        "maj": float(np.mean([score.maj for score in scores])),
        "pass_at_k": {k: float(np.mean([score.pass_at_k[k] for score in scores])) for k in sorted(shared_k, key=int)},
    }


#: ``format`` of a result file; bump ``RESULTS_VERSION`` when a field changes meaning.
RESULTS_FORMAT = "sgpo-eval-results"
RESULTS_VERSION = 1


def results_document(protocol: dict[str, Any], scores: Sequence[BenchmarkScore]) -> dict[str, Any]:
    """The result file's content: format, version, protocol, per-benchmark scores and the macro average."""
    return {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "protocol": protocol,
        "benchmarks": {score.benchmark: asdict(score) for score in scores},
        "macro_average": macro_average(scores),
    }


def read_results(path: Path) -> dict[str, Any]:
    """A result file written by :func:`results_document`; a clear error for anything else."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RecordsError(f"{path}: cannot read a result file ({error}); give a results.json of `eval score`") from None
    if not isinstance(document, dict) or document.get("format") != RESULTS_FORMAT:
        raise RecordsError(f"{path}: not an SGPO result file (format != {RESULTS_FORMAT!r}); give a results.json of `eval score`")
    if document.get("version") != RESULTS_VERSION:
        raise RecordsError(f"{path}: result format version {document.get('version')}, this code reads {RESULTS_VERSION}; re-run `eval score`")
    return document


def percent(value: float) -> str:
    """A score as the tables print it: one decimal."""
    return f"{value:.1f}"
