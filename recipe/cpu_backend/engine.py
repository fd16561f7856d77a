"""verl's FSDP training engines, registered for device ``cpu``.

verl 0.9.1 registers its FSDP/FSDP2 engines for ``cuda`` and ``npu`` only, so ``EngineRegistry`` finds
no engine once the platform is ``cpu``. The engines themselves are device-agnostic with FSDP2 on gloo,
so the same classes are registered for ``cpu`` through verl's own ``EngineRegistry.register``. Use
``strategy=fsdp2``: FSDP1 passes ``device_id`` (an accelerator index) and ``sync_module_states``.
"""

from __future__ import annotations

from verl.workers.engine import EngineRegistry
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

from recipe.cpu_backend.platform import DEVICE_NAME

#: (model_type, engine class) pairs registered for the CPU.
CPU_ENGINES = (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead))
CPU_STRATEGIES = ["fsdp", "fsdp2"]


def register_engines() -> None:
    """Register the FSDP engines for device ``cpu`` (idempotent)."""
    for model_type, engine_cls in CPU_ENGINES:
        registered = EngineRegistry._engines.get(model_type, {})
        if all(DEVICE_NAME in registered.get(strategy, {}) for strategy in CPU_STRATEGIES):
            continue
        EngineRegistry.register(model_type=model_type, backend=CPU_STRATEGIES, device=DEVICE_NAME)(engine_cls)
