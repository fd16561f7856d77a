"""verl plugin: registers SGPO's components with verl in every process that imports verl.

Installed checkouts reach this module through the ``verl.plugins`` entry point (pyproject.toml), which
``import verl`` loads in the driver and in every Ray actor. Checkouts that are not installed, and
multi-node clusters whose nodes do not share the install, use
``VERL_USE_EXTERNAL_MODULES=recipe.sgpo.plugin`` (forwarded to actors through
``+ray_kwargs.ray_init.runtime_env.env_vars``).

verl swallows plugin import errors at debug level, so a failure here is logged at ERROR level before it
propagates; ``python -m recipe.sgpo.preflight --check-install`` shows the full traceback.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("sgpo.plugin")


def register() -> None:
    """Import the modules whose decorators register SGPO with verl's registries (idempotent)."""
    # CPU backend (recipe/cpu_backend): only when this process runs verl on the CPU (VERL_PLATFORM=cpu,
    # inherited by every Ray actor). First: it registers the `cpu` platform, which must happen before
    # anything below imports a verl module that resolves the platform. Other runs import only its
    # __init__ (for requested(), which imports nothing).
    import recipe.cpu_backend

    if recipe.cpu_backend.requested():
        recipe.cpu_backend.register()

    import recipe.sgpo.advantage  # noqa: F401  registers algorithm.adv_estimator=sgpo

    import reward.manager  # noqa: F401  registers reward.reward_manager.name=sgpo

    # Last: importing verl's V1 trainers resolves verl's platform, which the CPU backend must precede.
    import recipe.sgpo.trainer  # noqa: F401  registers trainer.v1.trainer_mode=sgpo_sync (the async modes, sgpo_cpu_sync)

    import recipe.sgpo.offline.agent_loops  # noqa: F401  registers agent loops sgpo_record and sgpo_offline (offline SGPO)


try:
    register()
except Exception as error:  # noqa: BLE001 - re-raised below; verl would hide it otherwise
    message = f"SGPO plugin failed to register with verl: {type(error).__name__}: {error}"
    logger.error(message)
    print(f"[sgpo] ERROR: {message}", file=sys.stderr, flush=True)
    raise
