"""Rollout ``transformers``: generation with Hugging Face transformers on the CPU, for verl 0.9.1.

verl 0.9.1 generates only through vLLM / SGLang / TensorRT-LLM servers. This module adds a fourth
rollout, selected with ``actor_rollout_ref.rollout.name=transformers``, built from the same pieces:

* :class:`TransformersServer` — a Ray actor holding the policy as a transformers model on the CPU.
  It answers verl's token-in/token-out ``generate`` calls (the agent loop's ``LLMServerClient``) and
  batches the requests that arrive together into one left-padded ``model.generate`` call.
* :class:`TransformersReplica` — the ``RolloutReplica`` that starts one server per replica
  (registered with verl's ``RolloutReplicaRegistry`` under :data:`ROLLOUT_NAME`).
* :class:`TransformersServerAdapter` — the ``BaseRollout`` living inside verl's actor worker. In verl's
  colocated (``naive``) weight sync, the worker hands it the trained weights after every step; it ships
  them to its replica's server, which loads them before the next rollout.

Units: lengths are tokens; :data:`BATCH_WINDOW_S` is seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Optional

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from recipe.cpu_backend.platform import use_all_cores
from reward.settings_base import config_get

logger = logging.getLogger("sgpo.cpu_backend.rollout")

#: ``actor_rollout_ref.rollout.name`` of this rollout.
ROLLOUT_NAME = "transformers"
#: Name of the server actor of replica ``r`` (how the adapter in the worker finds it).
SERVER_NAME_TEMPLATE = "sgpo_cpu_rollout_server_{replica_rank}"
#: After the first request of a batch arrives, wait this long for the rest of the group to arrive.
#: The agent loop submits a step's requests within milliseconds of each other.
BATCH_WINDOW_S = 0.05
#: Most sequences generated in one forward batch (memory: batch × (prompt + response) × KV size).
MAX_BATCH_SEQUENCES = 64
#: CPU matmuls in bfloat16 are many times slower than float32 on CPUs without AMX; generate in float32.
GENERATION_DTYPE = torch.float32
def server_name(replica_rank: int) -> str:
    return SERVER_NAME_TEMPLATE.format(replica_rank=replica_rank)


def _model_path(model_config: Any) -> str:
    return str(config_get(model_config, "local_path") or config_get(model_config, "path"))


def _attn_implementation(model_config: Any) -> str:
    override = config_get(model_config, "override_config") or {}
    return dict(override).get("attn_implementation", "sdpa")


@dataclass
class _Request:
    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    top_k: int
    want_logprobs: bool
    future: asyncio.Future = field(repr=False)

    @property
    def sampling_key(self) -> tuple:
        return (self.temperature, self.top_p, self.top_k, self.want_logprobs)


class TransformersServer:
    """A policy on the CPU answering verl's ``generate`` calls; loads new weights from the trainer.

    Args:
        config: verl's ``RolloutConfig`` (``prompt_length``, ``response_length``, ``seed`` are read).
        model_config: verl's model config (``path``/``local_path``, ``override_config.attn_implementation``).
        replica_rank: index of the replica this server belongs to.
    """

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.threads = use_all_cores()
        # Sampling draws from torch's global generator; seeding it makes a run repeatable for a given
        # arrival order of requests (rollout.seed, one stream per replica).
        torch.manual_seed(int(config_get(config, "seed") or 0) + replica_rank)
        self.config = config
        self.replica_rank = replica_rank
        path = _model_path(model_config)
        self.model = AutoModelForCausalLM.from_pretrained(
            path, torch_dtype=GENERATION_DTYPE, attn_implementation=_attn_implementation(model_config)
        ).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        eos = set()
        try:
            generation_eos = GenerationConfig.from_pretrained(path).eos_token_id
        except OSError:  # no generation_config.json: the tokenizer's eos is the only stop token
            generation_eos = None
        for token in (generation_eos, tokenizer.eos_token_id):
            eos.update(token if isinstance(token, list) else [token] if token is not None else [])
        if not eos:
            raise ValueError(f"model at {path} defines no eos token (tokenizer or generation_config.json)")
        self.eos_token_ids = sorted(eos)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        self.global_steps: Optional[int] = None
        self.weight_updates = 0
        self.batches = 0
        self.generated_tokens = 0
        self._queue: Optional[asyncio.Queue] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._batcher: Optional[asyncio.Task] = None
        print(
            f"[cpu-rollout] replica {replica_rank}: {type(self.model).__name__} from {path} on the CPU "
            f"({GENERATION_DTYPE}, {self.threads} threads)",
            flush=True,
        )

    # ------------------------------------------------------------------ verl's server interface
    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Optional[list[Any]] = None,
        video_data: Optional[list[Any]] = None,
        **unused: Any,
    ) -> TokenOutput:
        """Generate one response (token ids in, token ids out), batched with concurrent requests."""
        if image_data is not None or video_data is not None:
            raise NotImplementedError("the transformers CPU rollout serves text-only models")
        prompt_ids = [int(token) for token in prompt_ids]
        budget = self.config.prompt_length + self.config.response_length - len(prompt_ids)
        max_tokens = sampling_params.get("max_tokens", sampling_params.get("max_new_tokens"))
        max_tokens = min(self.config.response_length, budget) if max_tokens is None else max_tokens
        max_tokens = max(1, min(int(max_tokens), self.config.response_length))
        top_k = sampling_params.get("top_k", -1)
        request = _Request(
            prompt_ids=prompt_ids,
            max_new_tokens=max_tokens,
            temperature=float(sampling_params.get("temperature", 1.0)),
            top_p=float(sampling_params.get("top_p", 1.0)),
            top_k=int(top_k) if top_k is not None else -1,
            want_logprobs=bool(sampling_params.get("logprobs", False)),
            future=asyncio.get_running_loop().create_future(),
        )
        self._ensure_batcher()
        await self._queue.put(request)
        token_ids, log_probs, stop_reason = await request.future
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            stop_reason=stop_reason,
            extra_fields={"global_steps": self.global_steps},
        )

    async def update_weights(self, named_tensors: dict[str, torch.Tensor], global_steps: Optional[int] = None) -> int:
        """Load the trainer's weights (HF parameter names); returns how many tensors were loaded."""
        # state_dict, not named_parameters: tied weights (lm_head = embed_tokens) appear under both names.
        params = self.model.state_dict(keep_vars=True)
        loaded = 0
        with torch.no_grad():
            for name, tensor in named_tensors.items():
                target = params.get(name)
                if target is None:
                    raise KeyError(f"trainer sent weight {name!r}, which the rollout model does not have")
                if target.shape != tensor.shape:
                    raise ValueError(f"weight {name!r}: trainer shape {tuple(tensor.shape)} != rollout {tuple(target.shape)}")
                target.copy_(tensor.to(target.dtype))
                loaded += 1
        if loaded == 0:
            raise ValueError("the trainer sent no weights")
        self.global_steps = global_steps
        self.weight_updates += 1
        print(f"[cpu-rollout] replica {self.replica_rank}: loaded {loaded} weight tensors (step {global_steps})", flush=True)
        return loaded

    async def stats(self) -> dict[str, Any]:
        """Counters for tests and logs: weight updates received, batches and tokens generated."""
        return {
            "weight_updates": self.weight_updates,
            "global_steps": self.global_steps,
            "batches": self.batches,
            "generated_tokens": self.generated_tokens,
        }

    async def ready(self) -> bool:
        return True

    # The model stays in host memory between rollouts: there is no device memory to free.
    async def wake_up(self) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        return None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None

    # ------------------------------------------------------------------ batching
    def _ensure_batcher(self) -> None:
        # One queue and batching task per event loop (Ray's actor has one; in-process callers may use several).
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._queue, self._loop = asyncio.Queue(), loop
            self._batcher = None
        if self._batcher is None or self._batcher.done():
            self._batcher = loop.create_task(self._batch_loop())

    async def _batch_loop(self) -> None:
        while True:
            first = await self._queue.get()
            await asyncio.sleep(BATCH_WINDOW_S)
            pending = [first]
            while not self._queue.empty():
                pending.append(self._queue.get_nowait())
            groups: dict[tuple, list[_Request]] = {}
            for request in pending:
                groups.setdefault(request.sampling_key, []).append(request)
            for requests in groups.values():
                for start in range(0, len(requests), MAX_BATCH_SEQUENCES):
                    chunk = requests[start : start + MAX_BATCH_SEQUENCES]
                    try:
                        results = await asyncio.to_thread(self._generate_batch, chunk)
                    except Exception as error:  # noqa: BLE001 - handed to every waiting caller
                        for request in chunk:
                            if not request.future.done():
                                request.future.set_exception(error)
                        continue
                    for request, result in zip(chunk, results, strict=True):
                        if not request.future.done():
                            request.future.set_result(result)

    @torch.no_grad()
    def _generate_batch(self, requests: list[_Request]) -> list[tuple[list[int], Optional[list[float]], str]]:
        """Left-pad the prompts, sample up to the longest budget, cut each response at its eos/budget."""
        width = max(len(request.prompt_ids) for request in requests)
        input_ids = torch.full((len(requests), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, request in enumerate(requests):
            input_ids[row, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
            attention_mask[row, width - len(request.prompt_ids) :] = 1
        sample = requests[0]
        greedy = sample.temperature <= 0
        max_new_tokens = max(request.max_new_tokens for request in requests)
        generate_kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            return_dict_in_generate=True,
            output_logits=sample.want_logprobs,
        )
        if not greedy:
            generate_kwargs.update(
                temperature=sample.temperature,
                top_p=sample.top_p,
                top_k=sample.top_k if sample.top_k > 0 else None,
            )
        else:  # explicit neutral values so the model's generation_config cannot turn sampling back on
            generate_kwargs.update(temperature=None, top_p=None, top_k=None)
        started = time.perf_counter()
        output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
        new_tokens = output.sequences[:, width:]
        log_probs_all = None
        if sample.want_logprobs:
            logits = torch.stack(output.logits, dim=1).float()
            log_probs_all = torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        results = []
        eos = torch.tensor(self.eos_token_ids)
        for row, request in enumerate(requests):
            tokens = new_tokens[row, : request.max_new_tokens]
            is_eos = torch.isin(tokens, eos)
            if is_eos.any():
                end, stop_reason = int(is_eos.nonzero()[0]) + 1, "completed"
            else:
                end, stop_reason = len(tokens), "length"
            token_ids = tokens[:end].tolist()
            log_probs = log_probs_all[row, :end].tolist() if log_probs_all is not None else None
            results.append((token_ids, log_probs, stop_reason))
            self.generated_tokens += len(token_ids)
        self.batches += 1
        logger.debug("batch of %d: %.1f s", len(requests), time.perf_counter() - started)
        return results


class TransformersReplica(RolloutReplica):
    """One :class:`TransformersServer` per replica; only the colocated (hybrid) mode of verl's sync trainer."""

    async def launch_servers(self):
        if self.nnodes != 1:
            raise NotImplementedError("the transformers CPU rollout runs one server per replica on one node")
        server_cls = ray.remote(TransformersServer)
        # num_cpus=0: the server must not take one of the few CPU slots verl's workers are scheduled on.
        server = server_cls.options(
            name=server_name(self.replica_rank), num_cpus=0, max_concurrency=self.max_concurrency
        ).remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        await server.ready.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{ROLLOUT_NAME}://replica-{self.replica_rank}"

    def rollout_worker_use_gpu(self) -> bool:
        return False


class TransformersServerAdapter(BaseRollout):
    """The rollout side inside verl's actor worker: forwards the trained weights to the replica's server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config=config, model_config=model_config, device_mesh=device_mesh)
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        self.replica_rank = rank // rollout_world_size
        self.is_leader_rank = rank % rollout_world_size == 0
        self._server = None

    def _server_handle(self):
        if self._server is None:  # the replica starts its server after the worker is built
            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        wire_format: str = "named_tensors",
        **kwargs: Any,
    ):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the transformers CPU rollout takes full tensors, not {wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("the transformers CPU rollout does not load LoRA adapters; merge them")
        named = {}
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            named[name] = tensor.detach().to("cpu").contiguous()
        if not self.is_leader_rank:
            return
        await self._server_handle().update_weights.remote(named, kwargs.get("global_steps"))

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None


def load_replica_class() -> type[RolloutReplica]:
    """Loader for verl's ``RolloutReplicaRegistry``."""
    return TransformersReplica


def register_rollout() -> None:
    """Make ``rollout.name=transformers`` resolvable by verl (idempotent).

    Two lookups resolve a rollout name in verl 0.9.1: ``RolloutReplicaRegistry`` (the servers; public
    ``register``) and ``verl.workers.rollout.base.get_rollout_class``, which reads the module-level
    table ``_ROLLOUT_REGISTRY`` of ``(name, mode) -> "module.Class"`` to build the adapter inside the
    actor worker. That table has no register function; adding our row to it is the one place this
    backend writes into verl's module state (it adds a name and changes no existing entry or code).
    """
    from verl.workers.rollout import base as rollout_base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    RolloutReplicaRegistry.register(ROLLOUT_NAME, load_replica_class)
    rollout_base._ROLLOUT_REGISTRY.setdefault(
        (ROLLOUT_NAME, "async"), f"{TransformersServerAdapter.__module__}.{TransformersServerAdapter.__qualname__}"
    )


# Registered by the module itself, not by the plugin calling a function of it: in the rollout server's
# process Ray imports this module first (to rebuild TransformersServer), and its `verl` import above loads
# the SGPO plugin, which then finds this module half-initialised (a `from ... import register_rollout`
# there failed, and with it the plugin's whole registration in that process).
register_rollout()
