#!/usr/bin/env bash
# Train a small step-wise judge on this CPU machine and measure it before and after (docs/judge_training.md):
# judge_arith examples -> untrained judge -> verl's SFT trainer (CPU backend) -> judge benchmark via the CPU
# vLLM server. Sets up .venv and the judge server's venv first. Arguments: `--help` (recipe/sgpo/judge_sft/cpu_run.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/run_scripts/setup_cpu_env.sh")"
bash "$ROOT/run_scripts/setup_judge_server_env.sh" >/dev/null
cd "$ROOT"
exec "$VENV/bin/python" -m recipe.sgpo.judge_sft.cpu_run "$@"
