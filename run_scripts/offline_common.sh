# shellcheck shell=bash
# Shared layer of the offline SGPO scripts run_scripts/offline_sgpo_<model>.sh (docs/offline.md). Sourced, never
# run. It reuses common.sh (build_overrides, launch, the judge placement) and the model file, so an offline run
# is sampled, judged and trained with exactly the online script's settings. One stage per call:
#
#   STAGE=generate  n responses per prompt of OFFLINE_DATA through verl's vLLM rollout, stored in OFFLINE_SET
#                   (python -m recipe.sgpo.offline generate; a Ray job when RAY_ADDRESS is set). Resumable.
#   STAGE=judge     grade every response and judge the wrong ones of all-negative groups with the external
#                   judge at JUDGE_URL (python -m recipe.sgpo.offline judge; this machine). Resumable.
#   STAGE=train     verl's trainer on the stored set: the sgpo_offline agent loop returns the stored responses
#                   and rewards, so no judge runs (common.sh launch with JUDGE_PLACEMENT=off; validation rows
#                   are still generated and graded as online).
#
# Environment (upper case; default in brackets), beyond common.sh's:
#   STAGE         generate | judge | train                                         [required]
#   OFFLINE_DATA  the training parquet to generate for        [the model file's dataset: DATA_DIR/<dataset>/train.parquet]
#   OFFLINE_SET   the set's folder (shared storage on clusters) [$STORAGE_DIR/offline_sets/<run name>]
#   GENERATOR_PATH  the model that generates (any model with the policy's tokenizer)  [MODEL_PATH: the starting policy]

# offline_launch <run name> <dataset> [hydra overrides...]
offline_launch() {
  local run_name="$1" dataset="$2"
  shift 2
  : "${STAGE:?set STAGE=generate, judge or train (docs/offline.md)}"
  : "${EXPERIMENT_NAME:=$run_name}"
  : "${STORAGE_DIR:=$HOME/sgpo_runs}"
  : "${OFFLINE_DATA:=$DATA_DIR/$dataset/train.parquet}"
  : "${OFFLINE_SET:=$STORAGE_DIR/offline_sets/$run_name}"
  local env_prefix=(env "PYTHONPATH=$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}")
  local dry=()
  [[ "${DRY_RUN:-0}" == 1 ]] && dry=(--dry-run)
  case "$STAGE" in
    generate)
      : "${JUDGE_PLACEMENT:=off}"  # generation grades validation-style and never judges
      build_overrides "actor_rollout_ref.model.path=$(hq "${GENERATOR_PATH:-$MODEL_PATH}")" "$@"
      local command=("$PYTHON" -m recipe.sgpo.offline generate --platform gpu --data "$OFFLINE_DATA" --out "$OFFLINE_SET"
        "${dry[@]}" -- "${OVERRIDES[@]}")
      echo "[sgpo-offline] $run_name: generate $OFFLINE_DATA -> $OFFLINE_SET" >&2
      if [[ -n "${RAY_ADDRESS:-}" && "${DRY_RUN:-0}" != 1 ]]; then
        # On a cluster the command is the job's driver: its trainer launches join the job's cluster.
        exec ray job submit "--address=$RAY_ADDRESS" "--runtime-env-json=$(ray_runtime_env_json)" -- "${command[@]}"
      fi
      exec "${env_prefix[@]}" "${command[@]}"
      ;;
    judge)
      : "${JUDGE_PLACEMENT:=external}"
      [[ "$JUDGE_PLACEMENT" == external ]] || die "STAGE=judge needs JUDGE_PLACEMENT=external (got $JUDGE_PLACEMENT): offline
  judging runs outside the trainer, so verl's reward-model pool does not exist. Serve the judge with
  run_scripts/serve_judge_vllm.sh and set JUDGE_URL to the address it prints."
      build_overrides "$@"
      [[ "${DRY_RUN:-0}" == 1 ]] || check_judge_reachable
      echo "[sgpo-offline] $run_name: judge $OFFLINE_SET with $JUDGE_URL" >&2
      exec "${env_prefix[@]}" "$PYTHON" -m recipe.sgpo.offline judge --set "$OFFLINE_SET" "${dry[@]}" -- "${OVERRIDES[@]}"
      ;;
    train)
      JUDGE_PLACEMENT=off  # rewards are stored; validation rows are graded, never judged
      TRAIN_FILES="['$OFFLINE_SET/train.parquet']"
      ALGORITHM_OVERRIDES+=("sgpo_offline.set_dir=$(hq "$OFFLINE_SET")")
      if [[ "${DRY_RUN:-0}" == 1 && ! -f "$OFFLINE_SET/manifest.json" ]]; then
        echo "[sgpo-offline] note: $OFFLINE_SET does not exist yet; its checks (group size, tokenizer, judge results) run at launch" >&2
        PREFLIGHT_ARGS=(--no-offline-set-check)
      fi
      launch "$run_name" "$@"
      ;;
    *)
      die "STAGE=$STAGE: expected generate, judge or train"
      ;;
  esac
}
