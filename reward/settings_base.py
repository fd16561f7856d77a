"""Helpers shared by the settings dataclasses (estimator, reward manager, grader): reading a section of
the trainer config, rejecting unknown keys, and checking numbers — every error names the full key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

SettingsT = TypeVar("SettingsT")


def config_get(config: Any, *keys: str) -> Any:
    """``config.keys[0].keys[1]...`` on a DictConfig, a dict or a dataclass config; None where missing."""
    node = config
    for key in keys:
        if node is None:
            return None
        if isinstance(node, Mapping) or hasattr(node, "get"):
            try:
                node = node.get(key)
                continue
            except Exception:  # noqa: BLE001 - some dataclass configs raise for unknown keys
                pass
        node = getattr(node, key, None)
    return node


def section_values(section: Any, prefix: str, known: set[str]) -> dict[str, Any]:
    """The items of a config section as a dict, refusing keys outside ``known`` (a typo must not
    silently fall back to a default). ``None`` gives ``{}``."""
    if section is None:
        return {}
    if not isinstance(section, Mapping) and not hasattr(section, "items"):
        raise ValueError(f"{prefix} must be a mapping of settings, got {type(section).__name__}")
    values = dict(section.items())
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(f'{prefix}.{k}' for k in unknown)}; known keys: {', '.join(sorted(known))}"
        )
    return values


def settings_from_section(cls: type[SettingsT], section: Any, prefix: str) -> SettingsT:
    """Build the flat settings dataclass ``cls`` from a config section (missing keys keep defaults)."""
    return cls(**section_values(section, prefix, {f.name for f in fields(cls)}))


def require_number(value: Any, key: str, minimum: float, exclusive: bool = False) -> None:
    """Raise ``ValueError`` naming ``key`` unless ``value`` is a finite number ``≥ minimum`` (``>`` if exclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    ok = value > minimum if exclusive else value >= minimum  # NaN fails both
    if not ok or math.isinf(value):
        raise ValueError(f"{key} must be a finite number {'>' if exclusive else '>='} {minimum}, got {value}")


def require_int(value: Any, key: str, minimum: int) -> None:
    """Raise ``ValueError`` naming ``key`` unless ``value`` is an integer ``≥ minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {value}")


def require_choice(value: Any, key: str, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``key`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
