"""The one settings mechanism of the recipe: every settings dataclass (estimator, reward manager, grader,
judge) is built from its config section by :func:`build_settings` — unknown keys refused, values checked
against the field's type hint, nested dataclasses built recursively — and checks its ranges with the
``require_*`` helpers. Every error names the full key (``reward.sgpo.judge.openai.timeout_s``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar, get_type_hints

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


def plain_mapping(mapping: Any) -> Any:
    """OmegaConf nodes to plain containers (without importing OmegaConf when it is not one)."""
    if mapping is None or isinstance(mapping, dict):
        return mapping
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(mapping, DictConfig):
            return OmegaConf.to_container(mapping, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with verl
        pass
    if isinstance(mapping, Mapping):
        return dict(mapping)
    return mapping


def section_values(section: Any, prefix: str, known: set[str]) -> dict[str, Any]:
    """The items of a config section as a dict, refusing keys outside ``known`` (a typo must not
    silently fall back to a default). ``None`` gives ``{}``."""
    if section is None:
        return {}
    section = plain_mapping(section)
    if not isinstance(section, Mapping):
        raise ValueError(f"{prefix} must be a mapping of settings, got {type(section).__name__}: {section!r}")
    values = dict(section.items())
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(f'{prefix}.{k}' for k in unknown)}; "
            f"known keys under {prefix}: {', '.join(sorted(known))}"
        )
    return values


def build_settings(cls: type[SettingsT], section: Any, prefix: str) -> SettingsT:
    """Build the settings dataclass ``cls`` from a config section; missing keys keep their defaults.

    Unknown keys are refused, each value is checked against its field's type hint (:func:`coerce_value`),
    and a field whose type is a dataclass is built from its sub-section the same way. Range checks are the
    dataclass's own (``__post_init__`` or ``validate``). ``None`` gives the defaults.
    """
    hints = get_type_hints(cls)
    values = section_values(section, prefix, {f.name for f in fields(cls)})
    built: dict[str, Any] = {}
    for key, value in values.items():
        hint, full = hints[key], f"{prefix}.{key}"
        if dataclasses.is_dataclass(hint):
            built[key] = build_settings(hint, value, full)
        else:
            built[key] = coerce_value(value, hint, full)
    return cls(**built)


def coerce_value(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a simple type hint (``int``, ``float``, ``bool``, ``str``, optional forms,
    ``dict``, ``tuple[str, ...]``/``list``) and return it in that type; ``Any`` passes unchanged."""
    text = str(hint)
    if hint is Any:
        return value
    if value is None:
        if "None" in text:
            return None
        raise ValueError(f"{key} must not be null")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if hint is int or text == "int | None":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if hint is float or text == "float | None":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{key} must be a number, got {value!r}")
    if text.startswith("dict"):
        plain = plain_mapping(value)
        if isinstance(plain, Mapping):
            return dict(plain)
        raise ValueError(f"{key} must be a mapping, got {value!r}")
    if text.startswith(("tuple", "list")):
        items = plain_mapping(value)
        if isinstance(items, (list, tuple)) or type(items).__name__ == "ListConfig":
            return tuple(items) if text.startswith("tuple") else list(items)
        raise ValueError(f"{key} must be a list, got {value!r}")
    if "str" in text:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key} must be a string, got {value!r}")
    return value  # pragma: no cover - every field type used by the settings is handled above


def require(ok: bool, key: str, value: Any, requirement: str) -> None:
    """Raise ``ValueError`` ``"<key> <requirement>, got <value>"`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{key} {requirement}, got {value!r}")


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
