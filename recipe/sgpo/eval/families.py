"""Sampling defaults of an evaluation, per model family. Every value here is ours unless a source is named.

``base``      Qwen2.5 base models answering in the Qwen-math template (data written with ``--template qwen_math``).
``distilled`` DeepSeek-R1-Distill-Qwen models answering in their own chat template with the boxed
              instruction (``--template boxed``); they think at length, so they get long responses.

temperature / top_p: 0.6 / 0.95, DeepSeek's recommendation for R1-style models (the R1-Distill model cards),
  used for both families so every row of a table is sampled alike; the SGPO paper gives no settings.
top_k: -1, no top-k cut (vLLM's "off"); 0 would mean the same in verl's transformers CPU rollout.
max_response_tokens: base 3,072 (1k prompt + 3k fits Qwen2.5-Math-7B's 4,096-token context, the training
  scripts' value); distilled 32,768 (the R1-Distill cards' evaluation length; training uses 16k).
max_prompt_tokens: 1,024, the training scripts' value (longer prompts are dropped and counted by verl).
samples: 16, the paper's Avg@16.
seed: 0, passed to the rollout (``actor_rollout_ref.rollout.seed``) and recorded in every result file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SamplingDefaults:
    """One family's evaluation protocol (tokens are policy-tokenizer tokens)."""

    temperature: float
    top_p: float
    top_k: int
    max_prompt_tokens: int
    max_response_tokens: int
    samples: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FAMILY_DEFAULTS: dict[str, SamplingDefaults] = {
    "base": SamplingDefaults(temperature=0.6, top_p=0.95, top_k=-1, max_prompt_tokens=1024,
                             max_response_tokens=3072, samples=16, seed=0),
    "distilled": SamplingDefaults(temperature=0.6, top_p=0.95, top_k=-1, max_prompt_tokens=1024,
                                  max_response_tokens=32768, samples=16, seed=0),
}


def family_defaults(family: str) -> SamplingDefaults:
    """The defaults of ``family``; a clear error naming the known families otherwise."""
    if family not in FAMILY_DEFAULTS:
        raise ValueError(f"--family {family!r}: expected one of {sorted(FAMILY_DEFAULTS)}")
    return FAMILY_DEFAULTS[family]
