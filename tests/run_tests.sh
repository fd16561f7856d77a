#!/usr/bin/env bash
# The test command (README "Set-up", and .ci/run): sets up or reuses .venv, then runs every test,
# slow end-to-end ones included. Extra arguments go to pytest (e.g. -m "not slow", -k estimator).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/run_scripts/setup_cpu_env.sh")"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
