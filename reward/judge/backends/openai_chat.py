"""An LLM judge behind any OpenAI-compatible ``/chat/completions`` endpoint (``openai`` and ``router``).

``openai``: vLLM or SGLang servers and hosted APIs at ``openai.base_url``.
``router``: verl's reward-model router. With ``reward.reward_model.enable=True`` verl 0.9.1 starts the
judge model as vLLM/SGLang server replicas behind a small FastAPI router and passes its ``host:port`` to
reward managers as ``reward_router_address``; the router forwards any path to a replica, so chat requests
go to ``http://{reward_router_address}/v1/chat/completions`` (``verl/experimental/reward_loop/router``).
The replicas serve the model under the local path of ``reward.reward_model.model_path``; by default we
omit ``model`` (vLLM and SGLang then use the one model they serve), ``openai.router_model`` sets it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from reward.judge.backends.http import HTTPClient
from reward.judge.base import JudgeRequest
from reward.judge.config import CONFIG_PREFIX, JudgeConfig
from reward.judge.core import DefaultSegmenter
from reward.judge.failures import BACKEND_ERROR, EMPTY_RESPONSE, JudgeFailure
from reward.judge.prompt import PromptTemplate, parse_verdict
from reward.judge.steps import Segmentation


def read_api_key(env_name: str | None, key: str) -> str | None:
    """The API key from the environment variable ``env_name`` (None when ``env_name`` is None).

    Raises:
        ValueError: the variable is named but not set (naming the setting and the variable, never a value).
    """
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ValueError(f"{key}={env_name!r} names an environment variable that is not set; export {env_name} "
                         "with the API key, or set the key to null for a server without authentication")
    return value


class OpenAIChatBackend(DefaultSegmenter):
    """Renders the judge prompt, asks the chat endpoint, parses ``VERDICT: <k>|none``.

    Args:
        config: the judge settings (``openai`` section: client and sampling).
        template: the judge prompt.
        name: ``openai`` or ``router`` (reported in verdicts).
        base_url: endpoint root including ``/v1``.
        model: model name for requests, or None to omit it.
        api_key: Bearer token or None.
    """

    empty_policy = "zero"

    def __init__(self, config: JudgeConfig, template: PromptTemplate, *, name: str, base_url: str,
                 model: str | None, api_key: str | None) -> None:
        super().__init__(config)
        settings = config.openai
        self.name = name
        self.template = template
        self.model = model
        self.client = HTTPClient(base_url, api_key=api_key, max_concurrency=settings.max_concurrency,
                                 timeout_s=settings.timeout_s, max_retries=settings.max_retries,
                                 backoff_s=settings.backoff_s, backoff_max_s=settings.backoff_max_s)
        self._sampling = {"temperature": settings.temperature, "top_p": settings.top_p,
                          "max_tokens": settings.max_tokens, **settings.extra_body}
        identity = [name, base_url, model, template.sha256, self._sampling]
        self.fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()

    @classmethod
    def from_config(cls, config: JudgeConfig, template: PromptTemplate,
                    reward_router_address: str | None = None) -> OpenAIChatBackend:
        settings = config.openai
        if config.backend == "router":
            if not reward_router_address:
                raise ValueError(
                    f"{CONFIG_PREFIX}.backend=router needs the reward_router_address that verl passes to reward "
                    "managers: enable verl's reward model (reward.reward_model.enable=True, "
                    "reward.reward_model.model_path=<judge>) or use backend=openai with openai.base_url")
            address = reward_router_address.removeprefix("http://").rstrip("/")
            return cls(config, template, name="router", base_url=f"http://{address}/v1",
                       model=settings.router_model, api_key=None)
        api_key = read_api_key(settings.api_key_env, f"{CONFIG_PREFIX}.openai.api_key_env")
        return cls(config, template, name="openai", base_url=settings.base_url, model=settings.model,
                   api_key=api_key)

    def prompt(self, request: JudgeRequest, segmentation: Segmentation) -> str:
        return self.template.render(request.problem, segmentation.texts, request.reference_answer,
                                    request.reference_solution)

    def payload(self, prompt: str) -> dict[str, Any]:
        """The request body for one judge prompt (also used by the raw-HTTP baseline of the benchmark)."""
        body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}], **self._sampling}
        if self.model:
            body["model"] = self.model
        return body

    async def complete(self, prompt: str) -> str:
        """The judge's reply text for one prompt; raises :class:`JudgeFailure`."""
        content, _ = await self._complete(prompt)
        return content

    async def _complete(self, prompt: str) -> tuple[str, str | None]:
        data = await self.client.post_json("/chat/completions", self.payload(prompt))
        try:
            choices = data.get("choices") or []
            choice = choices[0] if choices else {}
            content = (choice.get("message") or {}).get("content")
            finish_reason = choice.get("finish_reason")
        except (AttributeError, IndexError, TypeError):
            raise JudgeFailure(BACKEND_ERROR, f"unexpected reply shape: {str(data)[:200]}") from None
        if not isinstance(content, str) or not content.strip():
            raise JudgeFailure(EMPTY_RESPONSE, f"the reply has no message content (finish_reason={finish_reason})")
        return content, finish_reason

    async def first_error(self, request: JudgeRequest, segmentation: Segmentation) -> int | None:
        content, finish_reason = await self._complete(self.prompt(request, segmentation))
        try:
            return parse_verdict(content, len(segmentation.steps))
        except JudgeFailure as failure:
            if finish_reason == "length":  # say why: the judge ran out of openai.max_tokens
                raise JudgeFailure(failure.reason, f"{failure.detail} (stopped at openai.max_tokens)") from None
            raise

    async def aclose(self) -> None:
        await self.client.aclose()
