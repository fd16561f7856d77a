"""The step-wise judge: segments a wrong response into steps, finds its first incorrect step, grades it.

Public API::

    from reward.judge import JudgeConfig, JudgeRequest, Verdict, build_judge

    judge = build_judge(config)                        # JudgeConfig or a mapping (reward.sgpo.judge)
    verdict = await judge.judge(JudgeRequest(problem=..., reference_answer=..., response=...,
                                             reference_solution=...))
    await judge.aclose()

``judge()`` never raises and returns within ``deadline_s`` plus ``core.DEADLINE_MARGIN_S``; see
``reward/judge/base.py`` (the contract), ``core.py`` (cache, time bounds, unfinished responses),
``failures.py`` (failure reasons), ``prompt.py`` (the versioned prompt and its parser), ``backends/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reward.judge.base import Judge, JudgeRequest, Verdict
from reward.judge.config import JudgeConfig
from reward.judge.core import StepJudge

__all__ = ["Judge", "JudgeConfig", "JudgeRequest", "StepJudge", "Verdict", "build_judge"]


def build_judge(config: JudgeConfig | Mapping[str, Any] | None, *,
                reward_router_address: str | None = None) -> StepJudge:
    """Build the configured judge.

    Args:
        config: a :class:`JudgeConfig` or the ``reward.sgpo.judge`` mapping (validated; errors name the key).
        reward_router_address: ``host:port`` of verl's reward-model router (backend ``router`` only).

    Raises:
        ValueError: invalid settings, a missing API-key variable, ``router`` without an address, or an
            unknown prompt version — at start-up, never per sample.
    """
    if not isinstance(config, JudgeConfig):
        config = JudgeConfig.from_mapping(config)
    else:
        config.validate()
    if config.backend == "rule":
        from reward.judge.backends.rule import RuleBackend

        return StepJudge(RuleBackend(config), config)
    if config.backend == "prm":
        from reward.judge.backends.prm import PRMBackend

        return StepJudge(PRMBackend(config), config)
    from reward.judge.backends.openai_chat import OpenAIChatBackend
    from reward.judge.prompt import PromptTemplate

    template = PromptTemplate.load(config.prompt_version, config.prompt_file)
    backend = OpenAIChatBackend.from_config(config, template, reward_router_address)
    return StepJudge(backend, config)
