"""Settings of the step-wise judge (``reward.sgpo.judge.*``), TRL style: every field documented where defined.

:meth:`JudgeConfig.from_mapping` builds the settings from a plain mapping (an OmegaConf node, a dict from
yaml, or ``--set`` pairs of the benchmark CLI) and raises ``ValueError`` naming the full key
(``reward.sgpo.judge.openai.timeout_s``) for unknown keys, wrong types and out-of-range values.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reward.settings_base import build_settings, require, require_choice

#: Prefix of every judge setting in verl's config tree; error messages name keys with it.
CONFIG_PREFIX = "reward.sgpo.judge"

#: Backends :func:`reward.judge.build_judge` knows.
BACKENDS = ("openai", "router", "prm", "rule")


@dataclass(frozen=True)
class JudgeFamily:
    """Call settings a judge model family needs so that its verdict line is reached (estimates, see below).

    A reasoning judge thinks before it answers: cut off by ``max_tokens`` it never writes the verdict, and
    greedy decoding makes QwQ-style models loop. Each family's values become the ``reward.sgpo.judge``
    keys of the same names (``openai.*`` and ``deadline_s``); the launch scripts pass them for
    ``JUDGE_FAMILY`` (``python -m reward.judge.config --family <name>`` prints them), and
    ``run_scripts/serve_judge_vllm.sh`` sizes the server's context from ``max_tokens``.

    Attributes:
        temperature: Sampling temperature (0 = greedy).
        top_p: Nucleus sampling parameter.
        max_tokens: Most tokens the judge may generate, thinking included.
        timeout_s: Seconds one HTTP attempt may take: ``max_tokens`` at the slowest decode rate we plan for
            (:data:`PLANNED_MIN_DECODE_TOKENS_PER_S` per sequence on a loaded server), plus margin.
        max_retries: Further attempts after a failed one.
        deadline_s: Bound on one ``judge()`` call, all attempts and waits included:
            ``(1 + max_retries) × timeout_s`` plus queueing margin.
        yarn_past_prompt_tokens: Prompts longer than this many tokens need YaRN rope scaling on the
            server (the model card's rule); ``None``: the native context serves every prompt.
        native_context_tokens: The context the model was trained for (``original_max_position_embeddings``
            of its YaRN setting).
        basis: Where the numbers come from.
    """

    temperature: float
    top_p: float
    max_tokens: int
    timeout_s: float
    max_retries: int
    deadline_s: float
    yarn_past_prompt_tokens: int | None
    native_context_tokens: int
    basis: str


#: The slowest per-sequence decode rate (tokens/s) a judge attempt's time-out is planned for: a 32B model
#: at TP 2 decoding dozens of sequences at once on H100-class GPUs (estimate, not measured).
PLANNED_MIN_DECODE_TOKENS_PER_S = 15

#: Families by name; ``qwq`` (Qwen/QwQ-32B, the default judge) sets the dataclass defaults below.
JUDGE_FAMILIES: dict[str, JudgeFamily] = {
    "qwq": JudgeFamily(
        temperature=0.6, top_p=0.95, max_tokens=16_384, timeout_s=1_200.0, max_retries=1, deadline_s=2_700.0,
        yarn_past_prompt_tokens=8_192, native_context_tokens=32_768,
        basis="QwQ-32B model card: temperature 0.6, top-p 0.95, no greedy decoding; YaRN (factor 4) past "
              "8,192 prompt tokens. max_tokens 16,384: an estimate (step checks often reason past 4,096); "
              "16,384 / 15 tokens/s = 1,092 s per attempt, so timeout_s 1,200",
    ),
    "qwen3": JudgeFamily(
        temperature=0.6, top_p=0.95, max_tokens=16_384, timeout_s=1_200.0, max_retries=1, deadline_s=2_700.0,
        yarn_past_prompt_tokens=None, native_context_tokens=32_768,
        basis="Qwen3 model card, thinking mode: temperature 0.6, top-p 0.95, no greedy decoding; native "
              "32,768-token context. max_tokens and time-outs as qwq (estimates)",
    ),
    "instruct": JudgeFamily(
        temperature=0.0, top_p=1.0, max_tokens=4_096, timeout_s=300.0, max_retries=2, deadline_s=900.0,
        yarn_past_prompt_tokens=None, native_context_tokens=32_768,
        basis="non-reasoning instruction models (Qwen2.5-72B-Instruct, hosted chat APIs): greedy for "
              "repeatable verdicts; the verdict follows a short analysis, 4,096 tokens are ample (estimate)",
    ),
}
DEFAULT_JUDGE_FAMILY = "qwq"
_DEFAULT = JUDGE_FAMILIES[DEFAULT_JUDGE_FAMILY]
#: ``JudgeFamily`` fields that are ``reward.sgpo.judge.openai.*`` settings (``deadline_s`` is one level up).
_OPENAI_FAMILY_FIELDS = ("temperature", "top_p", "max_tokens", "timeout_s", "max_retries")


def judge_family(name: str) -> JudgeFamily:
    """The call settings of a judge family; ``ValueError`` naming the known families for another name."""
    if name not in JUDGE_FAMILIES:
        raise ValueError(f"judge family {name!r} is not known; choose one of {', '.join(JUDGE_FAMILIES)} "
                         "(reward/judge/config.py JUDGE_FAMILIES), or set the reward.sgpo.judge keys yourself")
    return JUDGE_FAMILIES[name]


def family_overrides(name: str) -> list[str]:
    """Hydra overrides that give ``reward.sgpo.judge`` the call settings of family ``name``."""
    family = judge_family(name)
    overrides = [f"{CONFIG_PREFIX}.openai.{key}={getattr(family, key)}" for key in _OPENAI_FAMILY_FIELDS]
    return [*overrides, f"{CONFIG_PREFIX}.deadline_s={family.deadline_s}"]


@dataclass
class StepsConfig:
    """How a response is split into steps (``reward.sgpo.judge.steps``); see :mod:`reward.judge.steps`.

    Attributes:
        max_steps: Most steps a response is split into. Longer responses have neighbouring steps merged
            evenly (in order, group sizes differing by at most one) down to this count. Bounds the judge
            prompt and sets the RTS resolution to ``1 / max_steps`` at worst.
        min_step_chars: Fragments shorter than this many characters (surrounding whitespace not counted)
            are not steps on their own (headers such as ``Step 2:``, a lone ``=``): they are merged into the
            following step (the last one into the preceding step). 8 keeps ``17 + 5 = 22`` a step of its
            own. Characters, not tokens, so segmentation needs no tokenizer.
        think_part: Which part of a response with a ``<think>…</think>`` block is judged:
            ``answer`` (default) the text after ``</think>`` — the model's own write-up of its solution,
            which also holds the graded ``\\boxed{}``; falls back to the thinking when the answer part is
            empty or the block never closes (a truncated response). ``think``: only the thinking.
            ``all``: the whole response. Responses without a think block are judged whole in every mode.
        max_judged_chars: Most characters of step text the judge backend is shown for one response (the
            steps' own text; the prompt's step tags, the problem and the reference come on top). The
            response is still segmented whole, so ``K`` counts all its steps and ``RTS = (k − 1) / K``;
            only the leading steps that fit are judged (at least one: a longer first step is cut to this
            many characters). "No error found" in such a prefix carries no signal: the verdict is "not
            judged" with ``failure='no_error_in_prefix'``; an error found in the prefix is a normal verdict.
            24,000 characters are about 6–8k tokens of math text (3–4 characters per token), so with the
            problem and reference the prompt stays within the 12,288 tokens that
            ``run_scripts/serve_judge_vllm.sh`` budgets for it, beside the ``qwq`` family's
            ``openai.max_tokens`` (16,384) in the served context (estimates, not measured).
    """

    max_steps: int = 30
    min_step_chars: int = 8
    think_part: str = "answer"
    max_judged_chars: int = 24_000

    def validate(self, prefix: str) -> None:
        require(self.max_steps >= 1, f"{prefix}.max_steps", self.max_steps, "must be at least 1")
        require(self.min_step_chars >= 0, f"{prefix}.min_step_chars", self.min_step_chars, "must be >= 0")
        require_choice(self.think_part, f"{prefix}.think_part", ("answer", "think", "all"))
        require(self.max_judged_chars >= 1, f"{prefix}.max_judged_chars", self.max_judged_chars,
               "must be at least 1 (characters of step text shown to the judge)")


@dataclass
class GradingConfig:
    """Verdict → RTS → graded value (``reward.sgpo.judge.grading``); see :mod:`reward.judge.grading`.

    Attributes:
        rts: ``step``: ``RTS = (k − 1) / K``. ``token``: share of the judged response's tokens that lie before
            step ``k`` (needs ``JudgeRequest.response_token_offsets``; without them characters are the weights).
        map: ``logistic``: ``g = σ(β (RTS − γ))``, increasing in RTS (our reading of the paper; a public
            re-implementation's ``+β`` form decreases and contradicts the stated intent). ``linear``: ``g = RTS``.
        beta: ``β`` of the logistic map (> 0), its steepness. Our default; the paper gives no value.
        gamma: ``γ`` of the logistic map, the RTS at which ``g = 0.5``. Our default; the paper gives no value.
    """

    rts: str = "step"
    map: str = "logistic"
    beta: float = 5.0
    gamma: float = 0.5

    def validate(self, prefix: str) -> None:
        require_choice(self.rts, f"{prefix}.rts", ("step", "token"))
        require_choice(self.map, f"{prefix}.map", ("logistic", "linear"))
        require(math.isfinite(self.beta) and self.beta > 0, f"{prefix}.beta", self.beta, "must be a finite number > 0")
        require(math.isfinite(self.gamma), f"{prefix}.gamma", self.gamma, "must be finite")


@dataclass
class HTTPClientConfig:
    """Connection settings of the HTTP backends, shared by ``openai`` (and ``router``) and ``prm`` (server mode).

    Attributes:
        api_key_env: Name of the environment variable that holds the API key (sent as a Bearer token);
            ``None`` sends no key. The key itself never appears in config, logs or verdicts (it is redacted
            from anything the server echoes).
        max_concurrency: Most requests in flight at once from one judge (one per reward worker process).
        timeout_s: Seconds one HTTP attempt may take (connect to last byte).
        max_retries: Further attempts after a failed one (connection error, timeout, HTTP 408/429/5xx);
            other 4xx answers and unparsable verdicts are not retried.
        backoff_s: First retry waits about this long; each later one doubles it, up to ``backoff_max_s``,
            with full jitter (uniform in ``[0.5, 1] ×`` the nominal wait) so workers do not retry in step.
        backoff_max_s: Cap of one retry wait, seconds.
    """

    api_key_env: str | None = None
    max_concurrency: int = 32
    timeout_s: float = 120.0
    max_retries: int = 2
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0

    def validate_http(self, prefix: str) -> None:
        require(self.max_concurrency >= 1, f"{prefix}.max_concurrency", self.max_concurrency, "must be at least 1")
        require(math.isfinite(self.timeout_s) and self.timeout_s > 0, f"{prefix}.timeout_s", self.timeout_s,
                "must be a finite number of seconds > 0")
        require(self.max_retries >= 0, f"{prefix}.max_retries", self.max_retries, "must be >= 0")
        require(self.backoff_s >= 0, f"{prefix}.backoff_s", self.backoff_s, "must be >= 0")
        require(self.backoff_max_s >= self.backoff_s, f"{prefix}.backoff_max_s", self.backoff_max_s,
                "must be >= backoff_s")


@dataclass
class OpenAIConfig(HTTPClientConfig):
    """An OpenAI-compatible chat endpoint (``reward.sgpo.judge.openai``): vLLM or SGLang servers, hosted APIs.

    The ``router`` backend (verl's reward-model router) uses these same settings except ``base_url`` and
    ``api_key_env``; its model name is ``router_model``.

    Attributes:
        base_url: Endpoint root including ``/v1``; requests go to ``{base_url}/chat/completions``.
        model: Model name sent in each request; ``None`` omits it (vLLM and SGLang then use the one model
            they serve).
        router_model: Model name for the ``router`` backend; ``None`` omits it. verl 0.9.1 serves the judge
            under the local path of ``reward.reward_model.model_path``.
        HTTP client settings (``api_key_env``, ``max_concurrency``, ``timeout_s``, ``max_retries``,
            ``backoff_s``, ``backoff_max_s``): :class:`HTTPClientConfig`. Here ``timeout_s`` and
            ``max_retries`` default to the ``qwq`` family's (:data:`JUDGE_FAMILIES`), as do
            ``temperature``, ``top_p`` and ``max_tokens``.
        temperature: Sampling temperature of the judge (0 = greedy: repeatable verdicts, but reasoning
            judges loop under greedy decoding).
        top_p: Nucleus sampling parameter sent with each request.
        max_tokens: Most tokens the judge may generate, thinking included; a reply cut off here has no
            verdict. Reasoning judges (QwQ-32B) need many thousand.
        extra_body: Extra JSON fields merged into each request body (e.g.
            ``{chat_template_kwargs: {enable_thinking: false}}`` for Qwen3 judges).
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str | None = None
    router_model: str | None = None
    timeout_s: float = _DEFAULT.timeout_s
    max_retries: int = _DEFAULT.max_retries
    temperature: float = _DEFAULT.temperature
    top_p: float = _DEFAULT.top_p
    max_tokens: int = _DEFAULT.max_tokens
    extra_body: dict[str, Any] = field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        require(self.base_url.startswith(("http://", "https://")), f"{prefix}.base_url", self.base_url,
               "must start with http:// or https://")
        self.validate_http(prefix)
        require(self.temperature >= 0, f"{prefix}.temperature", self.temperature, "must be >= 0")
        require(0 < self.top_p <= 1, f"{prefix}.top_p", self.top_p, "must lie in (0, 1]")
        require(self.max_tokens >= 1, f"{prefix}.max_tokens", self.max_tokens, "must be at least 1")


@dataclass
class PRMConfig(HTTPClientConfig):
    """A discriminative process reward model in the Qwen2.5-Math-PRM style (``reward.sgpo.judge.prm``).

    The response's steps are joined with ``step_token`` after each one, inside the model's chat template
    (system prompt, user = problem, assistant = steps); the model scores every step token; the first step
    whose probability of being correct falls below ``threshold`` is the first error.

    Attributes:
        mode: ``server``: a vLLM server started with ``--runner pooling`` (``/tokenize`` + ``/pooling``).
            ``local``: load the model in-process with transformers (CPU or one GPU).
        base_url: Server root, without ``/v1`` (``server`` mode).
        model: Served model name (``server`` mode; ``None`` omits it) or the model folder (``local`` mode).
        step_token: The token placed after each step. ``<extra_0>`` for Qwen2.5-Math-PRM.
        positive_label: Index of the "step is correct" class in the model's two-way output.
        threshold: A step whose probability of being correct is below this is an error.
        system_prompt: System message of the PRM's chat template (the one Qwen2.5-Math-PRM was trained with).
        HTTP client settings (``server`` mode: ``api_key_env``, ``max_concurrency``, ``timeout_s``,
            ``max_retries``, ``backoff_s``, ``backoff_max_s``): :class:`HTTPClientConfig`, with its defaults.
        device: Torch device of the ``local`` model (``cpu``, ``cuda``).
        dtype: Torch dtype of the ``local`` model (``float32``, ``bfloat16``).
        trust_remote_code: Allow the model folder's own code (Qwen2.5-Math-PRM ships its head as remote code).
    """

    mode: str = "server"
    base_url: str = "http://127.0.0.1:8000"
    model: str | None = None
    step_token: str = "<extra_0>"
    positive_label: int = 1
    threshold: float = 0.5
    system_prompt: str = "Please reason step by step, and put your final answer within \\boxed{}."
    device: str = "cpu"
    dtype: str = "float32"
    trust_remote_code: bool = True

    def validate(self, prefix: str) -> None:
        require_choice(self.mode, f"{prefix}.mode", ("server", "local"))
        if self.mode == "server":
            require(self.base_url.startswith(("http://", "https://")), f"{prefix}.base_url", self.base_url,
                   "must start with http:// or https://")
        else:
            require(bool(self.model), f"{prefix}.model", self.model, "must name the model folder in local mode")
        self.validate_http(prefix)
        require(bool(self.step_token), f"{prefix}.step_token", self.step_token, "must not be empty")
        require(self.positive_label in (0, 1), f"{prefix}.positive_label", self.positive_label, "must be 0 or 1")
        require(0 <= self.threshold <= 1, f"{prefix}.threshold", self.threshold, "must lie in [0, 1]")


@dataclass
class RuleConfig:
    """The rule-based verifier for synthetic multi-step arithmetic (``reward.sgpo.judge.rule``).

    Steps are the response's lines that hold ``a op b = c`` (integers, ``op`` one of ``+ - * × x ·``); other
    lines are not steps (their text joins the following step's span, trailing text the last one).

    Attributes:
        check_reference_values: Also mark a step wrong when its result is not one of the reference
            solution's intermediate values (the right arithmetic on the wrong numbers). Exact for the
            demo task, whose order of operations is fixed; turn off for tasks that allow other orders.
        no_steps: Verdict for a response without any arithmetic line: ``zero`` (default) judges it as one
            wrong step (``k = K = 1``, ``RTS = 0``: it got nowhere); ``not_judged`` returns a failure
            ``no_steps`` (reward 0 either way; ``zero`` keeps it in the group's spread).
        answer_step: The line of the final answer (the last ``\\boxed{}``) is a step too, the last one,
            wrong when the answer differs from the reference answer. Default on: without it a response whose
            lines are all right but whose answer is wrong (boxed a different number, or stopped before the
            last operation) is "no error found", RTS 1, the best grade a wrong answer can get; on the CPU
            main job a policy learned within 30 steps to box a number other than its last result, and its
            accuracy fell from 34 % to 12 % (docs/cpu_training.md).
    """

    check_reference_values: bool = True
    no_steps: str = "zero"
    answer_step: bool = True

    def validate(self, prefix: str) -> None:
        require_choice(self.no_steps, f"{prefix}.no_steps", ("zero", "not_judged"))


@dataclass
class JudgeConfig:
    """The step-wise judge (``reward.sgpo.judge``).

    Attributes:
        backend: ``openai`` (any OpenAI-compatible chat endpoint), ``router`` (verl's reward-model router,
            with ``reward.reward_model.enable=True``), ``prm`` (discriminative process reward model) or
            ``rule`` (exact verifier of the synthetic arithmetic task).
        prompt_version: Version of the judge prompt (``reward/judge/prompts/step_judge_<version>.txt``).
            A paper table names the prompt by this version.
        prompt_file: A custom template file in the same format; overrides ``prompt_version``.
        deadline_s: Bound on one ``judge()`` call in seconds, waiting for a free connection and all retries
            included. Past it the verdict is "not judged" (``failure='timeout'``). Default: the ``qwq``
            family's (:data:`JUDGE_FAMILIES`).
        cache_size: Most verdicts kept in the content-keyed cache (least recently used evicted); 0 disables.
            Only usable verdicts are cached; failures are retried by the next call.
        steps: Step segmentation (:class:`StepsConfig`).
        grading: RTS variant and graded map (:class:`GradingConfig`).
        openai: OpenAI-compatible client, also used by ``router`` (:class:`OpenAIConfig`).
        prm: Process reward model (:class:`PRMConfig`).
        rule: Rule-based arithmetic verifier (:class:`RuleConfig`).
    """

    backend: str = "openai"
    prompt_version: str = "v1"
    prompt_file: str | None = None
    deadline_s: float = _DEFAULT.deadline_s
    cache_size: int = 100_000
    steps: StepsConfig = field(default_factory=StepsConfig)
    grading: GradingConfig = field(default_factory=GradingConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    prm: PRMConfig = field(default_factory=PRMConfig)
    rule: RuleConfig = field(default_factory=RuleConfig)

    def validate(self, prefix: str = CONFIG_PREFIX) -> JudgeConfig:
        require_choice(self.backend, f"{prefix}.backend", BACKENDS)
        require(math.isfinite(self.deadline_s) and self.deadline_s > 0, f"{prefix}.deadline_s", self.deadline_s,
               "must be a finite number of seconds > 0")
        require(self.cache_size >= 0, f"{prefix}.cache_size", self.cache_size, "must be >= 0")
        if self.prompt_file is not None:
            require(os.path.isfile(self.prompt_file), f"{prefix}.prompt_file", self.prompt_file, "is not a file")
        self.steps.validate(f"{prefix}.steps")
        self.grading.validate(f"{prefix}.grading")
        self.openai.validate(f"{prefix}.openai")
        self.prm.validate(f"{prefix}.prm")
        self.rule.validate(f"{prefix}.rule")
        return self

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, prefix: str = CONFIG_PREFIX) -> JudgeConfig:
        """Build and validate settings from a (nested) mapping; missing keys keep their defaults.

        Raises:
            ValueError: naming the full key (``reward.sgpo.judge.<path>``) of an unknown key, a value of the
                wrong type, or a value out of range.
        """
        config = build_settings(cls, mapping, prefix)
        return config.validate(prefix)


def main(argv: list[str] | None = None) -> int:
    """``python -m reward.judge.config --family NAME [--field KEY]``: a family's hydra overrides, or one value."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m reward.judge.config", description=main.__doc__)
    parser.add_argument("--family", default=DEFAULT_JUDGE_FAMILY, help=f"one of {', '.join(JUDGE_FAMILIES)}")
    parser.add_argument("--field", help="print only this JudgeFamily field (empty for None)")
    args = parser.parse_args(argv)
    try:
        family = judge_family(args.family)
    except ValueError as error:
        parser.error(str(error))
    if args.field is None:
        print("\n".join(family_overrides(args.family)))
    elif args.field in {f.name for f in dataclasses.fields(JudgeFamily)}:
        value = getattr(family, args.field)
        print("" if value is None else value)
    else:
        parser.error(f"--field {args.field!r} is not a JudgeFamily field")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
