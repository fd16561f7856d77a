#!/usr/bin/env bash
# The test command (README "Set-up", and .ci/run): sets up or reuses .venv, then runs every test,
# slow end-to-end ones included, on two workers. Extra arguments go to pytest (e.g. -m "not slow", -k estimator).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/run_scripts/setup_cpu_env.sh")"
cd "$ROOT"
# Two test workers (pytest-xdist), one test file each at a time (tests/conftest.py): most of a serial run waits on
# process start-ups (Ray, the trainer, servers), so two workers on two cores fill that time. SGPO_TEST_WORKERS=0
# (or -n 0) runs serially.
exec "$VENV/bin/python" -m pytest -n "${SGPO_TEST_WORKERS:-2}" "$@"
