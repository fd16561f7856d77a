"""A CPU backend for verl 0.9.1, through verl's extension points only.

Loaded only when asked for: ``recipe/sgpo/plugin.py`` calls :func:`register` when ``VERL_PLATFORM=cpu``
(the variable that also makes verl pick the platform). Other runs import only this file, for
:func:`requested`, which imports nothing else; the backend's modules stay unloaded.

What :func:`register` adds to verl's registries:

=========================  ===================================================  ==========================
piece                      verl extension point                                 selected by
=========================  ===================================================  ==========================
platform ``cpu`` (gloo)    ``PlatformRegistry.register``                        ``VERL_PLATFORM=cpu``
FSDP engines on ``cpu``    ``EngineRegistry.register``                          ``trainer.device=cpu``
rollout ``transformers``   ``RolloutReplicaRegistry.register`` + the rollout    ``rollout.name=transformers``
                           class table read by ``get_rollout_class``
trainer ``cpu_sync``       ``register_trainer`` (verl's ``sync`` + gloo worker)  ``trainer.v1.trainer_mode``
=========================  ===================================================  ==========================

The remaining settings are plain config keys, collected in ``recipe/sgpo/config/platform/cpu.yaml``
(``+platform=cpu`` on top of ``sgpo_trainer``).
"""

from __future__ import annotations

import os

#: Environment variable (verl's own) and the value of it that selects this backend.
PLATFORM_ENV = "VERL_PLATFORM"
PLATFORM_NAME = "cpu"


def requested() -> bool:
    """True when this process was asked to run verl on the CPU (``VERL_PLATFORM=cpu``). Imports nothing."""
    return os.environ.get(PLATFORM_ENV, "").strip().lower() == PLATFORM_NAME


def register() -> None:
    """Register the platform, engines, rollout and trainer mode with verl (idempotent)."""
    import recipe.cpu_backend.platform  # noqa: F401  registers the platform (before anything resolves it)
    import recipe.cpu_backend.trainer  # noqa: F401  registers trainer mode cpu_sync
    import recipe.cpu_backend.rollout  # noqa: F401  registers rollout `transformers` at the end of its body
    from recipe.cpu_backend.engine import register_engines

    register_engines()
