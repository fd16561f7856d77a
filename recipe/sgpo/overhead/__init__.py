"""Step-time model of SGPO's judge overhead: predicted SGPO / GRPO step-time ratio and judge calls per step.

One training step of verl's synchronous trainer is modelled as (all times in seconds)::

    T_step = T_rollout + T_update
    T_rollout = max over responses i of  max(graded_i, judged_i)     (verl waits for every reward)
    graded_i  = generated_i + grade_s                                (outcome grading, per response)

* **Generation** (:func:`serve`): the ``B·n`` responses of a batch are sent to the policy's rollout
  replicas at ``t = 0`` (at most ``rollout_max_in_flight`` a replica, the rest queued) and decoded with continuous batching, modelled as processor sharing: while ``c``
  requests are in flight the pooled replicas emit ``R · throughput(c / R)`` tokens/s in total, shared
  equally (``throughput`` is a per-replica table of output tokens/s against concurrency, linearly
  interpolated, flat beyond its ends). A request's work, in decode-token equivalents, is
  ``output_tokens + prefill_cost · prompt_tokens``. Response lengths are drawn (seeded) from a log-normal
  with the given mean and coefficient of variation, clipped at ``max_response_length``; wrong responses are
  ``wrong_length_factor`` times longer (they ramble and hit the limit more often).
* **Outcomes**: a share ``all_negative_share`` of the ``B`` groups is all wrong; in the others each
  response is correct with probability ``other_accuracy`` (at least one correct).
* **Judging** (an external judge server, same processor-sharing model with its own throughput table,
  ``judge_replicas`` and at most ``judge_max_in_flight`` requests in flight, FIFO beyond): a request is
  ``judge_prompt_overhead_tokens + judged_tokens`` prompt tokens and ``judge_output_tokens`` output
  tokens, where ``judged_tokens`` is the response (base models) or its part after ``</think>``
  (``judged_tokens_mean`` for distilled models: ``reward.sgpo.judge.steps.think_part=answer``).

  - ``after_group`` (default): the wrong members of an all-negative group are sent when its **last**
    member is graded (the group rendezvous, reward/rendezvous.py);
  - ``eager``: every wrong response is sent when **it** is graded; in a mixed group the call is cancelled
    when the group's first correct member is graded (a wrong member graded after that is never sent).
    Wasted calls = wrong members of mixed groups sent before their group settled.
  - ``grpo``: no judge.
* **Update** (:func:`update_seconds`): ``(6 · ppo_epochs + 2) · P · tokens / (gpus · peak_flops · mfu)``
  — forward+backward is ``6·P`` FLOPs a token, the old-log-prob pass ``2·P`` (no reference model: the
  launch scripts set ``use_kl_loss=False``); ``P`` policy parameters, ``tokens`` prompt + response tokens
  of the batch.
* **Measured policy side** (optional run keys, for calibrating the model on a measured GRPO baseline, as
  the CPU validation does): ``generation_s`` replaces the generation model by *static batches* — the
  responses are generated in consecutive chunks of ``static_batch_sequences`` (one ``model.generate``
  call each, as the CPU rollout ``recipe/cpu_backend/rollout.py`` does) and every response of chunk ``k``
  (0-based) of ``K`` completes at ``generation_s · (k + 1) / K`` (in a seeded random order, spaced by
  :data:`STATIC_BATCH_ORDER_S`: they are then graded one after another, which is what decides the eager
  schedule's wasted calls); ``update_s`` replaces the update formula
  (everything of the step outside generation: old log-probs, advantages, update, weight sync).

Predicted ratio = ``T_step(schedule) / T_step(grpo)`` with the same drawn batch. Inputs and the source of
every figure: recipe/sgpo/overhead/inputs.json; documentation and the table: docs/judge_overhead.md.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The input table shipped with the module (launch-script settings, throughput tables, phases, judges).
INPUTS_PATH = Path(__file__).with_name("inputs.json")

#: Schedules the model knows: the two of ``reward.sgpo.judge_schedule`` and the judge-free baseline.
SCHEDULES = ("grpo", "after_group", "eager")

#: Spacing (s) of the completion times inside one static batch: it only orders the responses.
STATIC_BATCH_ORDER_S = 1e-6

#: Work below this many decode-token equivalents counts as done (floating-point slack of the event loop).
WORK_EPSILON = 1e-9


@dataclass(frozen=True)
class ThroughputCurve:
    """Output tokens/s of one server replica against requests in flight, linearly interpolated."""

    concurrency: tuple[float, ...]
    tokens_per_s: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.concurrency) != len(self.tokens_per_s) or not self.concurrency:
            raise ValueError("a throughput table needs as many tokens_per_s as concurrency points (at least one)")
        if list(self.concurrency) != sorted(self.concurrency) or min(self.tokens_per_s) <= 0:
            raise ValueError(f"throughput table must have increasing concurrency and positive tokens/s, got "
                             f"{self.concurrency} / {self.tokens_per_s}")

    def at(self, concurrency: float) -> float:
        """Aggregate tokens/s of one replica with ``concurrency`` requests in flight (flat beyond the table)."""
        points, values = self.concurrency, self.tokens_per_s
        if concurrency <= points[0]:
            return values[0] * concurrency / points[0]  # below the first point: per-request speed constant
        if concurrency >= points[-1]:
            return values[-1]
        k = bisect.bisect_right(points, concurrency)
        share = (concurrency - points[k - 1]) / (points[k] - points[k - 1])
        return values[k - 1] + share * (values[k] - values[k - 1])

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> "ThroughputCurve":
        return cls(tuple(float(c) for c in table["concurrency"]), tuple(float(t) for t in table["tokens_per_s"]))


@dataclass(frozen=True)
class Request:
    """One request to a server: when it arrives, its work (decode-token equivalents), when it is cancelled."""

    arrival_s: float
    work_tokens: float
    cancel_s: float = math.inf


def serve(requests: list[Request], curve: ThroughputCurve, replicas: int, max_in_flight: int) -> list[float]:
    """Completion time (s) of each request on ``replicas`` pooled processor-sharing replicas.

    With ``c`` requests in flight (at most ``max_in_flight``, FIFO queue beyond) each progresses at
    ``replicas · curve.at(c / replicas) / c`` tokens/s. A request cancelled before it completes frees its
    slot at ``cancel_s`` and gets completion time ``nan``; one cancelled before it starts never runs.
    """
    order = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)
    done = [math.nan] * len(requests)
    remaining = {i: requests[i].work_tokens for i in order}
    waiting: list[int] = []
    active: list[int] = []
    now, next_arrival = 0.0, 0
    while next_arrival < len(order) or waiting or active:
        while waiting and len(active) < max_in_flight:
            candidate = waiting.pop(0)
            if requests[candidate].cancel_s > now:
                active.append(candidate)
        rate = replicas * curve.at(len(active) / replicas) / len(active) if active else 0.0
        arrival = requests[order[next_arrival]].arrival_s if next_arrival < len(order) else math.inf
        finish = min((remaining[i] / rate for i in active), default=math.inf) + now if active else math.inf
        cancel = min((requests[i].cancel_s for i in active), default=math.inf)
        event = min(arrival, finish, cancel)
        if math.isinf(event):
            break  # only cancelled requests were waiting
        for i in active:
            remaining[i] -= rate * (event - now)
        now = event
        for i in list(active):
            if remaining[i] <= WORK_EPSILON:
                done[i] = now
                active.remove(i)
            elif requests[i].cancel_s <= now:
                active.remove(i)
        while next_arrival < len(order) and requests[order[next_arrival]].arrival_s <= now:
            waiting.append(order[next_arrival])
            next_arrival += 1
    return done


@dataclass(frozen=True)
class StepPrediction:
    """One predicted step: seconds, judge calls, and the ratio to the GRPO step of the same batch."""

    schedule: str
    step_s: float
    grpo_step_s: float
    rollout_s: float
    update_s: float
    judge_calls: int
    wasted_calls: int

    @property
    def ratio(self) -> float:
        """SGPO / GRPO step time (1.0 for ``grpo``)."""
        return self.step_s / self.grpo_step_s


def update_seconds(params_b: float, tokens: float, gpus: int, peak_tflops: float, mfu: float, ppo_epochs: int) -> float:
    """``(6 · ppo_epochs + 2) · P · tokens / (gpus · peak_flops · mfu)`` seconds (P = ``params_b`` · 1e9)."""
    flops = (6 * ppo_epochs + 2) * params_b * 1e9 * tokens
    return flops / (gpus * peak_tflops * 1e12 * mfu)


def draw_batch(run: dict[str, Any], phase: dict[str, Any], seed: int) -> tuple[list[bool], list[float]]:
    """Correctness and response length (tokens) of the ``B·n`` responses, group-major, seeded."""
    rng = random.Random(seed)
    groups, n = int(run["train_batch_size"]), int(run["n"])
    # which groups are all-negative is drawn: the rollout queue serves requests in batch order
    negative_groups = set(rng.sample(range(groups), round(groups * float(phase["all_negative_share"]))))
    correct: list[bool] = []
    for group in range(groups):
        negative = group in negative_groups
        members = [False] * n if negative else [rng.random() < phase["other_accuracy"] for _ in range(n)]
        if not negative and not any(members):
            members[rng.randrange(n)] = True
        correct += members
    mean, cv, limit = float(run["response_mean_tokens"]), float(run["response_cv"]), float(run["max_response_length"])
    sigma = math.sqrt(math.log(1 + cv * cv))
    lengths = []
    for ok in correct:
        scale = 1.0 if ok else float(run["wrong_length_factor"])
        mu = math.log(mean * scale) - sigma * sigma / 2  # log-normal with mean = mean · scale
        lengths.append(min(limit, max(1.0, rng.lognormvariate(mu, sigma))))
    return correct, lengths


def predict(run: dict[str, Any], judge: dict[str, Any], phase: dict[str, Any], schedule: str,
            seed: int = 0) -> StepPrediction:
    """Predict one step of ``run`` (a launch script's row) with ``judge`` under ``schedule`` (see module doc)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    correct, lengths = draw_batch(run, phase, seed)
    n = int(run["n"])
    graded = [t + float(run["grade_s"]) for t in generation_completions(run, lengths, seed)]
    if run.get("update_s") is not None:
        update_s = float(run["update_s"])
    else:
        tokens = sum(lengths) + len(lengths) * float(run["prompt_tokens"])
        update_s = update_seconds(run["params_b"], tokens, run["gpus"], run["peak_tflops"], run["mfu"], run["ppo_epochs"])
    grpo_step = max(graded) + update_s
    if schedule == "grpo":
        return StepPrediction(schedule, grpo_step, grpo_step, max(graded), update_s, 0, 0)
    requests, wasted = judge_requests(correct, lengths, graded, n, run, judge, schedule)
    finished = serve(requests, ThroughputCurve.from_table(judge["throughput"]), int(judge["replicas"]),
                     int(judge["max_in_flight"]))
    rollout = max([*graded, *(t for t in finished if not math.isnan(t))])
    used = sum(1 for r in requests if math.isinf(r.cancel_s))
    return StepPrediction(schedule, rollout + update_s, grpo_step, rollout, update_s, used + wasted, wasted)


def generation_completions(run: dict[str, Any], lengths: list[float], seed: int = 0) -> list[float]:
    """When each response (group-major order) finishes generating, in seconds from the step's start.

    Measured static batches when the run gives ``generation_s`` (chunk ``k`` of ``K`` of
    ``static_batch_sequences`` responses completes at ``generation_s · (k + 1) / K``, in a seeded random
    order spaced by :data:`STATIC_BATCH_ORDER_S`), else the processor-sharing model of the rollout
    replicas on ``rollout_throughput``.
    """
    if run.get("generation_s") is not None:
        chunk = int(run["static_batch_sequences"])
        if chunk < 1:
            raise ValueError(f"static_batch_sequences must be at least 1, got {chunk}")
        chunks = math.ceil(len(lengths) / chunk)
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
        rank = {response: position for position, response in enumerate(order)}
        return [float(run["generation_s"]) * (i // chunk + 1) / chunks + rank[i] * STATIC_BATCH_ORDER_S
                for i in range(len(lengths))]
    prefill_cost = float(run["prefill_cost"])
    generation = [Request(0.0, length + prefill_cost * run["prompt_tokens"]) for length in lengths]
    replicas = int(run["rollout_replicas"])
    curve = ThroughputCurve.from_table(run["rollout_throughput"])
    return serve(generation, curve, replicas, replicas * int(run["rollout_max_in_flight"]))


def judge_requests(correct: list[bool], lengths: list[float], graded: list[float], n: int, run: dict[str, Any],
                   judge: dict[str, Any], schedule: str) -> tuple[list[Request], int]:
    """The judge requests of one step under ``schedule`` and how many of them are wasted (cancelled)."""
    requests, wasted = [], 0
    for start in range(0, len(correct), n):
        members = range(start, start + n)
        settled_mixed = min((graded[i] for i in members if correct[i]), default=math.inf)
        group_complete = max(graded[i] for i in members)
        for i in members:
            if correct[i]:
                continue
            judged = min(lengths[i], float(run["judged_tokens_mean"] or lengths[i]))
            work = judge["output_tokens"] + judge["prefill_cost"] * (judge["prompt_overhead_tokens"] + judged)
            if math.isinf(settled_mixed):
                requests.append(Request(group_complete if schedule == "after_group" else graded[i], work))
            elif schedule == "eager" and graded[i] < settled_mixed:
                requests.append(Request(graded[i], work, cancel_s=settled_mixed))
                wasted += 1
    return requests, wasted


def load_inputs(path: Path | str = INPUTS_PATH) -> dict[str, Any]:
    """The input table (runs, judges, phases) as a dict; see inputs.json's ``sources``."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def prediction_table(inputs: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """One row per launch script × judge × phase × schedule with the predicted ratio and judge calls."""
    rows = []
    for run_name, run in inputs["runs"].items():
        for judge_name, judge in inputs["judges"].items():
            for phase_name, phase in inputs["phases"].items():
                for schedule in SCHEDULES[1:]:
                    step = predict(run, judge, phase, schedule, seed)
                    rows.append({"run": run_name, "judge": judge_name, "phase": phase_name, "schedule": schedule,
                                 "ratio": step.ratio, "grpo_step_s": step.grpo_step_s, "step_s": step.step_s,
                                 "judge_calls": step.judge_calls, "wasted_calls": step.wasted_calls})
    return rows
