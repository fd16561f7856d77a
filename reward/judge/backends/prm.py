"""A discriminative process reward model (PRM) in the Qwen2.5-Math-PRM style.

Input: the PRM's chat template with ``prm.system_prompt``, the problem as the user turn, and the
response's steps as the assistant turn, each step followed by ``prm.step_token`` (``<extra_0>``). The
model has a two-way head on every token; at each step token, ``softmax(logits)[positive_label]`` is the
probability that the step is correct. The first step whose probability is below ``prm.threshold`` is the
first error (no such step: no error). The PRM never sees the reference: it judges the steps alone.

Modes:

* ``server``: a vLLM server started with ``--runner pooling`` (e.g.
  ``vllm serve Qwen/Qwen2.5-Math-PRM-7B --runner pooling``). Two calls per response: ``/tokenize`` (chat
  form, so the server's own template and tokenizer are used) and ``/pooling`` with the token ids and
  ``task=token_classify``, which returns class probabilities. vLLM serves ``Qwen2ForProcessRewardModel``
  with STEP pooling (rows only at the step token, id 151651 = ``<extra_0>`` unless the server gets
  ``--pooler-config '{"step_tag_id": ID}'``); with ALL pooling it returns a row per token. Both are read.
* ``local``: transformers in-process (``AutoModel`` with the model's remote code for Qwen2.5-Math-PRM; any
  ``*ForTokenClassification`` folder works too). One forward pass at a time in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from typing import Any

from reward.judge.backends.http import HTTPClient
from reward.judge.backends.openai_chat import read_api_key
from reward.judge.base import JudgeRequest
from reward.judge.config import CONFIG_PREFIX, JudgeConfig
from reward.judge.core import DefaultSegmenter
from reward.judge.failures import BACKEND_ERROR, JudgeFailure
from reward.judge.steps import Segmentation


def first_below(probabilities: list[float], threshold: float, num_steps: int) -> int | None:
    """1-based index of the first probability below ``threshold``; None when all pass.

    Raises:
        JudgeFailure: ``backend_error`` when fewer than ``num_steps`` scores came back and none of them
            is below the threshold (the input was truncated: the verdict would be a guess).
    """
    for index, probability in enumerate(probabilities[:num_steps], start=1):
        if probability < threshold:
            return index
    if len(probabilities) < num_steps:
        raise JudgeFailure(BACKEND_ERROR, f"PRM scored {len(probabilities)} of {num_steps} steps (input truncated?)")
    return None


class PRMBackend(DefaultSegmenter):
    """First error from per-step probabilities of a process reward model (see the module docstring)."""

    name = "prm"
    empty_policy = "zero"

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__(config)
        self.settings = settings = config.prm
        identity = [settings.mode, settings.base_url, settings.model, settings.step_token, settings.positive_label,
                    settings.threshold, settings.system_prompt]
        self.fingerprint = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        self.client: HTTPClient | None = None
        self._step_token_id: int | None = None
        self._local: tuple[Any, Any] | None = None
        self._local_lock = threading.Lock()
        if settings.mode == "server":
            api_key = read_api_key(settings.api_key_env, f"{CONFIG_PREFIX}.prm.api_key_env")
            self.client = HTTPClient(settings.base_url, api_key=api_key, max_concurrency=settings.max_concurrency,
                                     timeout_s=settings.timeout_s, max_retries=settings.max_retries,
                                     backoff_s=settings.backoff_s, backoff_max_s=settings.backoff_max_s)

    def messages(self, request: JudgeRequest, segmentation: Segmentation) -> list[dict[str, str]]:
        token = self.settings.step_token
        assistant = "".join(f"{text}{token}" for text in segmentation.texts)
        return [{"role": "system", "content": self.settings.system_prompt},
                {"role": "user", "content": request.problem},
                {"role": "assistant", "content": assistant}]

    async def first_error(self, request: JudgeRequest, segmentation: Segmentation) -> int | None:
        if self.settings.mode == "local":
            probabilities = await asyncio.to_thread(self._score_local, self.messages(request, segmentation))
        else:
            probabilities = await self._score_server(self.messages(request, segmentation))
        return first_below(probabilities, self.settings.threshold, len(segmentation.steps))

    # -- server mode -------------------------------------------------------------------------------
    def _body(self, **fields: Any) -> dict[str, Any]:
        return {**({"model": self.settings.model} if self.settings.model else {}), **fields}

    async def _server_step_token_id(self) -> int:
        if self._step_token_id is None:
            data = await self.client.post_json(
                "/tokenize", self._body(prompt=self.settings.step_token, add_special_tokens=False))
            tokens = data.get("tokens") if isinstance(data, dict) else None
            if not tokens or len(tokens) != 1:
                raise JudgeFailure(BACKEND_ERROR, f"step token {self.settings.step_token!r} is not one token: {tokens}")
            self._step_token_id = int(tokens[0])
        return self._step_token_id

    async def _score_server(self, messages: list[dict[str, str]]) -> list[float]:
        step_id = await self._server_step_token_id()
        tokenized = await self.client.post_json(
            "/tokenize", self._body(messages=messages, add_generation_prompt=False))
        tokens = tokenized.get("tokens") if isinstance(tokenized, dict) else None
        if not tokens:
            raise JudgeFailure(BACKEND_ERROR, "the server returned no tokens")
        pooled = await self.client.post_json(
            "/pooling", self._body(input=tokens, task="token_classify", use_activation=True))
        positions = [i for i, token in enumerate(tokens) if token == step_id]
        try:
            rows = pooled["data"][0]["data"]
            if len(rows) == len(tokens):  # ALL pooling: one row per token
                rows = [rows[i] for i in positions]
            elif len(rows) != len(positions):  # STEP pooling returns the step-token rows only
                raise ValueError(f"{len(rows)} rows for {len(tokens)} tokens and {len(positions)} step tokens")
            return [float(row[self.settings.positive_label]) for row in rows]
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise JudgeFailure(BACKEND_ERROR, f"unexpected /pooling reply ({error}): {str(pooled)[:200]}") from None

    # -- local mode --------------------------------------------------------------------------------
    def _load_local(self) -> tuple[Any, Any]:
        if self._local is None:
            import torch
            from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

            path, remote = self.settings.model, self.settings.trust_remote_code
            model_config = AutoConfig.from_pretrained(path, trust_remote_code=remote)
            architectures = getattr(model_config, "architectures", None) or []
            loader = (AutoModelForTokenClassification
                      if any(a.endswith("ForTokenClassification") for a in architectures) else AutoModel)
            model = loader.from_pretrained(path, dtype=getattr(torch, self.settings.dtype), trust_remote_code=remote)
            model = model.to(self.settings.device).eval()
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=remote)
            self._local = (tokenizer, model)
        return self._local

    def _score_local(self, messages: list[dict[str, str]]) -> list[float]:
        import torch

        with self._local_lock:  # one forward pass at a time: the model is not re-entrant on one device
            tokenizer, model = self._load_local()
            step_id = tokenizer.convert_tokens_to_ids(self.settings.step_token)
            if step_id is None or step_id == tokenizer.unk_token_id:
                raise JudgeFailure(BACKEND_ERROR, f"step token {self.settings.step_token!r} is not in the vocabulary")
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.settings.device)
            with torch.no_grad():
                output = model(input_ids=ids)
            logits = output.logits if hasattr(output, "logits") else output[0]
            probabilities = torch.softmax(logits[0].float(), dim=-1)[:, self.settings.positive_label]
            mask = ids[0] == step_id
            return probabilities[mask].tolist()

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
