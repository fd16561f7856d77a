#!/usr/bin/env bash
# Serve the step-wise judge with vLLM's OpenAI-compatible server on this GPU node, for
# JUDGE_PLACEMENT=external runs. Prints the JUDGE_URL and JUDGE_MODEL to export before launching.
#   bash run_scripts/serve_judge_vllm.sh                                   # QwQ-32B on 8 GPUs (4 x TP 2)
#   JUDGE_MODEL_PATH=/models/Qwen3-32B JUDGE_TP=4 bash run_scripts/serve_judge_vllm.sh
#   DRY_RUN=1 bash run_scripts/serve_judge_vllm.sh                         # print the command only
#
# Environment (default in brackets):
#   JUDGE_MODEL_PATH   judge weights, local folder or hub id                  [Qwen/QwQ-32B]
#   JUDGE_MODEL        name clients send (reward.sgpo.judge.openai.model)      [the last part of JUDGE_MODEL_PATH]
#   JUDGE_TP           GPUs per replica (tensor parallel)                      [2: QwQ-32B's 65 GB of bf16 weights]
#   JUDGE_DP           replicas in this server (data parallel)                 [GPUs visible / JUDGE_TP]
#   JUDGE_PORT         port                                                    [8000]
#   JUDGE_FAMILY       qwq | qwen3 | instruct: the reply budget (max_tokens) and YaRN rule, as the training
#                      run's JUDGE_FAMILY (reward/judge/config.py JUDGE_FAMILIES)  [qwq]
#   JUDGE_MAX_PROMPT_TOKENS  longest judge prompt, tokens                      [12288: see below]
#   JUDGE_MAX_MODEL_LEN  prompt + reply tokens per request       [JUDGE_MAX_PROMPT_TOKENS + the family's max_tokens]
#   PYTHON             a Python that imports this repository's reward package  [python]
#   JUDGE_GPU_MEMORY_UTILIZATION  share of each GPU for vLLM                   [0.9]
#   JUDGE_API_KEY_ENV  NAME of a variable holding a key the server will require (vLLM's --api-key) [unset]
#   JUDGE_HOST         address printed in JUDGE_URL (must be reachable from every training node)
#                                                                              [this node's first IP address]
#   VLLM               the vllm command                                        [vllm]
#   DRY_RUN            1: print the command, run nothing                       [0]
set -euo pipefail

: "${JUDGE_MODEL_PATH:=Qwen/QwQ-32B}"
: "${JUDGE_MODEL:=$(basename "$JUDGE_MODEL_PATH")}"
: "${JUDGE_TP:=2}"
: "${JUDGE_PORT:=8000}"
: "${JUDGE_FAMILY:=qwq}"
: "${PYTHON:=python}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
family_field() {
  PYTHONPATH="$REPO_DIR" "$PYTHON" -W ignore::RuntimeWarning -m reward.judge.config --family "$JUDGE_FAMILY" --field "$1" ||
    { echo "[sgpo] ERROR: JUDGE_FAMILY=$JUDGE_FAMILY: see the message above" >&2; exit 2; }
}
# The longest judge prompt (estimate): steps.max_judged_chars = 24,000 characters of steps at ~3 characters
# a token (8,000) + the problem, the reference solution and the template (up to ~4,000).
: "${JUDGE_MAX_PROMPT_TOKENS:=12288}"
reply_tokens="$(family_field max_tokens)"
: "${JUDGE_MAX_MODEL_LEN:=$((JUDGE_MAX_PROMPT_TOKENS + reply_tokens))}"
# QwQ-32B's model card: past 8,192 prompt tokens enable YaRN (factor 4 over its 32,768 native positions).
yarn_past="$(family_field yarn_past_prompt_tokens)"
native_context="$(family_field native_context_tokens)"
rope_args=()
if [[ -n "$yarn_past" && "$JUDGE_MAX_PROMPT_TOKENS" -gt "$yarn_past" ]]; then
  rope_args=(--hf-overrides "{\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": $native_context}}")
elif [[ "$JUDGE_MAX_MODEL_LEN" -gt "$native_context" ]]; then
  echo "[sgpo] ERROR: JUDGE_MAX_MODEL_LEN=$JUDGE_MAX_MODEL_LEN exceeds the $JUDGE_FAMILY family's $native_context native
  positions; lower JUDGE_MAX_PROMPT_TOKENS or reward.sgpo.judge.openai.max_tokens" >&2
  exit 2
fi
: "${JUDGE_GPU_MEMORY_UTILIZATION:=0.9}"
: "${VLLM:=vllm}"

if [[ -z "${JUDGE_DP:-}" ]]; then
  gpus=8
  if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
    IFS=, read -r -a visible <<<"$CUDA_VISIBLE_DEVICES"
    gpus=${#visible[@]}
  elif command -v nvidia-smi >/dev/null; then
    gpus="$(nvidia-smi --list-gpus | wc -l)"
  fi
  JUDGE_DP=$((gpus / JUDGE_TP))
  if [[ "$JUDGE_DP" -lt 1 ]]; then
    echo "[sgpo] ERROR: JUDGE_TP=$JUDGE_TP needs more GPUs than the $gpus visible here" >&2
    exit 2
  fi
fi
if [[ -z "${JUDGE_HOST:-}" ]]; then
  JUDGE_HOST="$(hostname -I 2>/dev/null | awk '{print $1}')"
  JUDGE_HOST="${JUDGE_HOST:-$(hostname)}"
fi

command=(
  "$VLLM" serve "$JUDGE_MODEL_PATH"
  --served-model-name "$JUDGE_MODEL"
  --host 0.0.0.0
  --port "$JUDGE_PORT"
  --tensor-parallel-size "$JUDGE_TP"
  --data-parallel-size "$JUDGE_DP"
  --max-model-len "$JUDGE_MAX_MODEL_LEN"
  --gpu-memory-utilization "$JUDGE_GPU_MEMORY_UTILIZATION"
  "${rope_args[@]}"
)
# No reasoning parser: the judge's <think> block stays in the answer text, where the verdict parser
# removes it (reward/judge/prompt.py).
if [[ -n "${JUDGE_API_KEY_ENV:-}" ]]; then
  # vLLM reads the key from VLLM_API_KEY, so it never appears on a command line.
  export VLLM_API_KEY="${!JUDGE_API_KEY_ENV:?JUDGE_API_KEY_ENV=$JUDGE_API_KEY_ENV names an unset variable}"
fi

{
  echo "[sgpo] judge: $JUDGE_MODEL_PATH, $JUDGE_DP replica(s) x TP $JUDGE_TP. Before launching a training run:"
  echo "  export JUDGE_URL=http://$JUDGE_HOST:$JUDGE_PORT/v1 JUDGE_MODEL=$JUDGE_MODEL JUDGE_FAMILY=$JUDGE_FAMILY"
  if [[ -n "${JUDGE_API_KEY_ENV:-}" ]]; then
    echo "  export JUDGE_API_KEY_ENV=$JUDGE_API_KEY_ENV   # and $JUDGE_API_KEY_ENV itself on every training node"
  fi
  echo "  (ready once vLLM logs \"Application startup complete\"; check: curl http://$JUDGE_HOST:$JUDGE_PORT/v1/models)"
} >&2

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  echo "[sgpo] DRY_RUN=1: the command (not run):" >&2
  printf '%q ' "${command[@]}"
  echo
  exit 0
fi
exec "${command[@]}"
