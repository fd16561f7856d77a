"""Shared test helpers. Tests run on CPU against the real verl 0.9.1 wheel (README "Tests")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Keep verl/Ray quiet and off the network in every test process and in the actors they start.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
