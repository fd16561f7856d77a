# shellcheck shell=bash
# Shared layer of the evaluation scripts run_scripts/eval_<model>.sh (docs/evaluation.md). Sourced, never run.
# It reuses common.sh (BENCHMARKS, REPO_DIR, die, hydra helpers) and the model file (MODEL_PATH, DATA_DIR,
# NNODES) read-only, and runs `python -m recipe.sgpo.eval run` for one checkpoint.
#
# Environment (upper case; default in brackets):
#   CHECKPOINT     what to evaluate: Hugging Face folder, hub id, or verl global_step_N[/actor]  [the model file's MODEL_PATH]
#   METHOD         row label in the tables: base model | GRPO | SGPO | ...   [base model]
#   MODEL_LABEL    model column in the tables                                [the script's model name]
#   EVAL_OUT       evaluation folder (resumes when it exists)                [outputs/eval/<model>/<method>/<checkpoint name>]
#   DATA_DIR       root of the benchmark parquet files                       [the model file's]
#   BENCHMARK_FILES space-separated parquet files                            [the eight benchmarks' test.parquet under DATA_DIR]
#   GPUS_PER_NODE  GPUs per node                                             [8]
#   PYTHON         the Python that has verl and this recipe                  [python]
#   DRY_RUN        1: check every input, print the first trainer command, run nothing  [0]
# Sampling defaults come from the family (recipe/sgpo/eval/families.py); flags such as --samples 4 or
# --max-response-tokens 8192 go on the command line, hydra overrides after `--`.

# eval_launch <model label> <family> [eval run flags...]
eval_launch() {
  local label="$1" family="$2"
  shift 2
  : "${CHECKPOINT:=$MODEL_PATH}"
  : "${METHOD:=base model}"
  : "${MODEL_LABEL:=$label}"
  : "${GPUS_PER_NODE:=8}"
  : "${PYTHON:=python}"
  local method_dir="${METHOD// /_}"
  : "${EVAL_OUT:=$REPO_DIR/outputs/eval/$label/$method_dir/$(basename "$CHECKPOINT")}"
  local files=()
  if [[ -n "${BENCHMARK_FILES:-}" ]]; then
    read -r -a files <<<"$BENCHMARK_FILES"
  else
    local name
    for name in "${BENCHMARKS[@]}"; do files+=("$DATA_DIR/$name/test.parquet"); done
  fi
  local command=(env "PYTHONPATH=$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m recipe.sgpo.eval run
    --model "$CHECKPOINT" --family "$family" --method "$METHOD" --model-label "$MODEL_LABEL"
    --out "$EVAL_OUT" --nnodes "$NNODES" --gpus-per-node "$GPUS_PER_NODE" --benchmarks "${files[@]}")
  [[ "${DRY_RUN:-0}" == 1 ]] && command+=(--dry-run)
  echo "[sgpo-eval] $label ($family): $CHECKPOINT -> $EVAL_OUT" >&2
  (cd "$REPO_DIR" && "${command[@]}" "$@")
}
