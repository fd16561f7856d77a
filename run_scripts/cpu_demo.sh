#!/usr/bin/env bash
# The main job on its embedded CPU default (README "Set-up"): sets up or reuses .venv, then runs it.
# Arguments are passed through (see `--help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/run_scripts/setup_cpu_env.sh")"
cd "$ROOT"
exec "$VENV/bin/python" -m recipe.sgpo.cpu_demo "$@"
