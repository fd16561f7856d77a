# shellcheck shell=bash
# Shared layer of the GPU launch scripts (docs/gpu_runs.md). Sourced, never run.
#
# A launch script (run_scripts/<algorithm>_<model>.sh) sources this file and one model file
# (run_scripts/models/<model>.sh: the settings that depend on model size), sets ALGORITHM_OVERRIDES and
# calls `launch <run name> "$@"`, which
#   1. builds the hydra overrides, in this order (a later value of the same key wins):
#      paths and cluster shape, the model file's MODEL_OVERRIDES, the evaluation protocol, the script's
#      ALGORITHM_OVERRIDES, the judge placement, logging, and last the script's own arguments ("$@");
#   2. runs the fail-fast check `python -m recipe.sgpo.preflight` with exactly those overrides (a few
#      seconds, before Ray or any GPU work; always, not only in a dry run);
#   3. prints the command (DRY_RUN=1) or runs it: on this machine with `python -m verl.trainer.main_ppo`,
#      or, when RAY_ADDRESS is set, as a job on that Ray cluster (`ray job submit`).
# Everything a run needs is a hydra override in the printed command; the config itself is
# recipe/sgpo/config/sgpo_trainer.yaml (composing verl's ppo_trainer).
#
# Environment (upper case; default in brackets):
#   MODEL_PATH          policy model, local folder or hub id   [$MODELS_DIR/<name> when MODELS_DIR is set, else
#                       the model file's MODEL_HUB_ID; multi-node launches refuse a hub id (every node would
#                       download it): `hf download <MODEL_HUB_ID> --local-dir $MODELS_DIR/<name>` once]
#   MODELS_DIR          shared folder of downloaded models (one subfolder per hub id's last part) [unset]
#   STORAGE_DIR         shared storage of checkpoints (a 32B checkpoint with optimizer state is ~0.4 TB)
#                                                                       [$HOME/sgpo_runs; multi-node: required]
#   DATA_DIR            where `python -m data_prep write --out` put the parquet files, one root per
#                       prompt template                                 [the model file's: data/qwen_math or data/boxed]
#   TRAIN_FILES         hydra list of training parquet files            [the model file's, under DATA_DIR]
#   VAL_FILES           hydra list of validation parquet files   [TRAIN_VAL_BENCHMARKS under DATA_DIR]
#   TRAIN_VAL_BENCHMARKS  benchmarks validated every trainer.test_freq steps, space-separated (the full eight at
#                       Avg@16 are the evaluation command's, for chosen checkpoints)  [the competition sets]
#   VAL_N               samples per problem of that validation (Avg@VAL_N)  [16]
#   NNODES              nodes of the policy (actor, rollout)            [the model file's]
#   GPUS_PER_NODE       GPUs per node                                   [8]
#   CKPT_DIR            checkpoint folder (shared storage on clusters)  [$STORAGE_DIR/checkpoints/$PROJECT_NAME/$EXPERIMENT_NAME]
#   PROJECT_NAME        logger project                                  [sgpo]
#   EXPERIMENT_NAME     logger run name; also names CKPT_DIR            [the script's run name]
#   LOGGER              tensorboard | wandb | console (console is always on)  [tensorboard]
#   JUDGE_PLACEMENT     external | standalone | off (colocated: refused, see set_judge_overrides)
#                                                                       [external for SGPO; baselines: off]
#   JUDGE_URL           external: OpenAI-compatible endpoint, with /v1  [http://127.0.0.1:8000/v1]
#   JUDGE_MODEL         external: model name sent with each request     [unset: the server's only model]
#   JUDGE_API_KEY_ENV   external: NAME of the variable holding the API key (the key never enters a command) [unset]
#   JUDGE_FAMILY        qwq | qwen3 | instruct: the judge's sampling, max_tokens, time-outs, retries and
#                       deadline (reward/judge/config.py JUDGE_FAMILIES)  [qwq]
#   JUDGE_MODEL_PATH    standalone: judge weights                       [Qwen/QwQ-32B]
#   JUDGE_NNODES        standalone: nodes of the judge's own GPU pool   [1]
#   JUDGE_GPUS_PER_NODE standalone: GPUs per judge node                 [8]
#   JUDGE_TP            standalone: tensor parallel size of each judge replica [2]
#   RAY_ADDRESS         a Ray cluster's dashboard (http://<head>:8265): submit there with `ray job submit`
#   RAY_SHIP_REPO       1: upload this repository as the job's working_dir (no shared file system) [0]
#   PYTHON              the Python that has verl and this recipe        [python]
#   DRY_RUN             1: run the preflight, print the command, run nothing  [0]
#   JUDGE_CHECK         0: skip the reachability check of JUDGE_URL before a real launch [1]

RUN_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$RUN_SCRIPTS_DIR/.." && pwd)"
CONFIG_DIR="$REPO_DIR/recipe/sgpo/config"
CONFIG_NAME=sgpo_trainer

# Registers the recipe (estimator, reward manager, trainer modes) in every process that imports verl,
# whether or not the repository is pip-installed there (docs/verl_integration.md).
PLUGIN_MODULE=recipe.sgpo.plugin

# The eight benchmarks of the paper's tables, as `python -m data_prep write benchmarks` writes them.
BENCHMARKS=(math500 aime24 aime25 amc23 minerva olympiadbench hmmt_feb_2024 hmmt_feb_2025)

# Validated during training (every trainer.test_freq steps): the competition sets, 160 problems x Avg@16 =
# 2,560 samples a pass instead of the eight benchmarks' 1,607 x 16 = 25,712 (a tenth). The large sets
# (math500, minerva, olympiadbench) and the full Avg@16 table are for the evaluation of chosen checkpoints.
DEFAULT_TRAIN_VAL_BENCHMARKS="aime24 aime25 amc23 hmmt_feb_2024 hmmt_feb_2025"
# Problems a validation batch holds: the whole training-time set in one batch, as verl's default, but bounded
# so a VAL_FILES with many problems is not sent to the engines in one piece.
VAL_BATCH_SIZE=256

# Files left out when RAY_SHIP_REPO=1 uploads the repository (Ray's upload limit; data and checkpoints
# must then live on storage every node reads anyway).
SHIP_EXCLUDES='[".git", ".venv", "data", "checkpoints", "outputs", "cache", "tensorboard_log", "wandb"]'

die() {
  echo "[sgpo] ERROR: $*" >&2
  exit 2
}

# A mistake in the cluster shape: fatal for a launch, a warning in a dry run.
refuse_or_warn() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    echo "[sgpo] WARNING (a launch would stop here): $*" >&2
  else
    die "$*"
  fi
}

# Printed in a dry run of a multi-node script when RAY_ADDRESS is not set.
PLACEHOLDER_RAY_ADDRESS='http://<ray-head>:8265'

# A hydra list of parquet files under DATA_DIR: hydra_files <split> <name>...
hydra_files() {
  local split="$1" name items=()
  shift
  for name in "$@"; do
    items+=("'$DATA_DIR/$name/$split.parquet'")
  done
  local IFS=,
  echo "[${items[*]}]"
}

# A value as one hydra value: bare when hydra's grammar reads it as one string (paths, hub ids, URLs),
# else single-quoted (spaces, ~ = , [ ] and the like), so it can never split into several overrides.
hq() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:@+-]+$ ]]; then
    echo "$1"
  else
    local value="${1//\\/\\\\}"
    echo "'${value//\'/\\\'}'"
  fi
}

# Judge placement -> hydra overrides in JUDGE_OVERRIDES (docs/gpu_runs.md "Judge placement").
set_judge_overrides() {
  case "$1" in
    external)
      # The judge is any OpenAI-compatible server (run_scripts/serve_judge_vllm.sh, a hosted API).
      JUDGE_OVERRIDES=(reward.sgpo.judge.backend=openai "reward.sgpo.judge.openai.base_url=$(hq "$JUDGE_URL")")
      [[ -z "${JUDGE_MODEL:-}" ]] || JUDGE_OVERRIDES+=("reward.sgpo.judge.openai.model=$(hq "$JUDGE_MODEL")")
      [[ -z "${JUDGE_API_KEY_ENV:-}" ]] || JUDGE_OVERRIDES+=("reward.sgpo.judge.openai.api_key_env=$(hq "$JUDGE_API_KEY_ENV")")
      ;;
    standalone)
      # verl starts the judge as vLLM replicas behind a router on their own GPU pool and scores each
      # trajectory as it finishes, with all of the row's fields (reference solution, group id).
      JUDGE_OVERRIDES=(
        reward.reward_model.enable=True
        reward.reward_model.enable_resource_pool=True
        "reward.reward_model.nnodes=$JUDGE_NNODES"
        "reward.reward_model.n_gpus_per_node=$JUDGE_GPUS_PER_NODE"
        "reward.reward_model.model_path=$(hq "$JUDGE_MODEL_PATH")"
        reward.reward_model.rollout.name=vllm
        "reward.reward_model.rollout.tensor_model_parallel_size=$JUDGE_TP"
        # The judge's GPUs hold nothing else. Ours: vLLM's usual share, leaving room for CUDA graphs,
        # which we turn on (verl's reward-model default is eager mode: slower decoding).
        reward.reward_model.rollout.gpu_memory_utilization=0.85
        reward.reward_model.rollout.enforce_eager=False
        # Required: verl 0.9.1 puts the judge's vLLM to sleep after start-up when free_cache_engine is on
        # (RewardModelManager) and, on its own pool, never wakes it (only the colocated path does).
        reward.reward_model.rollout.free_cache_engine=False
        # Without a custom reward function verl's reward loop treats an enabled reward model as a
        # discriminative one and never calls our reward manager (RewardLoopWorker.compute_score). Our
        # grader's verl entry point is that function; the manager still does all the scoring.
        reward.custom_reward_function.path=pkg://reward.grader
        reward.custom_reward_function.name=compute_score
        reward.sgpo.judge.backend=router
      )
      ;;
    off)
      JUDGE_OVERRIDES=(reward.sgpo.judge_scope=off)
      ;;
    colocated)
      die "JUDGE_PLACEMENT=colocated is not supported with verl 0.9.1's V1 trainer: a colocated reward model is
  scored in one batch after the rollout (_compute_reward_colocate), which hands the reward workers only
  prompts, responses and raw_prompt -- no reference answer, no reference solution, no group id -- so the
  step-wise judge has nothing to compare with. Use JUDGE_PLACEMENT=standalone (the judge on its own GPUs:
  JUDGE_NNODES x JUDGE_GPUS_PER_NODE) or JUDGE_PLACEMENT=external (JUDGE_URL). docs/gpu_runs.md: Judge placement."
      ;;
    *)
      die "JUDGE_PLACEMENT=$1: expected external, standalone or off"
      ;;
  esac
}

set_logger_override() {
  case "$1" in
    tensorboard | wandb) LOGGER_OVERRIDE="trainer.logger=[console,$1]" ;;
    console) LOGGER_OVERRIDE="trainer.logger=[console]" ;;
    *) die "LOGGER=$1: expected tensorboard, wandb or console" ;;
  esac
}

# The external judge must answer before hours of rollouts depend on it (skipped in dry runs).
check_judge_reachable() {
  if [[ "${JUDGE_CHECK:-1}" == 0 ]]; then
    return 0
  fi
  if ! command -v curl >/dev/null; then
    echo "[sgpo] note: curl not found; not checking that $JUDGE_URL answers" >&2
    return 0
  fi
  local auth=()
  if [[ -n "${JUDGE_API_KEY_ENV:-}" ]]; then
    auth=(-H "Authorization: Bearer ${!JUDGE_API_KEY_ENV:-}")
  fi
  curl --silent --fail --max-time 10 "${auth[@]}" "$JUDGE_URL/models" >/dev/null ||
    die "the judge at JUDGE_URL=$JUDGE_URL does not answer GET /models. Start it (run_scripts/serve_judge_vllm.sh
  prints the JUDGE_URL to export), or set JUDGE_CHECK=0 to launch anyway."
}

# The runtime environment of a Ray job: how every node's workers find the recipe.
ray_runtime_env_json() {
  "$PYTHON" - "$REPO_DIR" "$PLUGIN_MODULE" "${RAY_SHIP_REPO:-0}" "$SHIP_EXCLUDES" "${PYTHONPATH:-}" <<'PY'
import json, sys
repo, plugin, ship, excludes, cluster_path = (sys.argv[1], sys.argv[2], sys.argv[3] == "1",
                                               json.loads(sys.argv[4]), sys.argv[5])
env = {"env_vars": {"VERL_USE_EXTERNAL_MODULES": plugin}}
if ship:
    env.update(working_dir=repo, excludes=excludes)  # Ray puts the working_dir on every worker's sys.path
else:
    # the repository on a file system every node mounts at this path, ahead of (not instead of) the
    # PYTHONPATH of this shell: a job's env_vars replace the workers' variable
    env["env_vars"]["PYTHONPATH"] = repo + (":" + cluster_path if cluster_path else "")
print(json.dumps(env, sort_keys=True))
PY
}

# build_overrides [hydra overrides...]: the run's hydra overrides in OVERRIDES (paths and cluster shape, the
# model file's sizes, the evaluation protocol, ALGORITHM_OVERRIDES, the judge placement, logging, then the
# arguments). Also used by run_scripts/offline_common.sh.
build_overrides() {
  : "${GPUS_PER_NODE:=8}"
  : "${PROJECT_NAME:=sgpo}"
  : "${EXPERIMENT_NAME:=$run_name}"
  : "${STORAGE_DIR:=$HOME/sgpo_runs}"
  : "${CKPT_DIR:=$STORAGE_DIR/checkpoints/$PROJECT_NAME/$EXPERIMENT_NAME}"
  : "${TRAIN_VAL_BENCHMARKS:=$DEFAULT_TRAIN_VAL_BENCHMARKS}"
  local train_val_benchmarks
  read -r -a train_val_benchmarks <<<"$TRAIN_VAL_BENCHMARKS"
  : "${VAL_FILES:=$(hydra_files test "${train_val_benchmarks[@]}")}"
  : "${VAL_N:=16}"
  : "${JUDGE_FAMILY:=qwq}"
  : "${LOGGER:=tensorboard}"
  : "${PYTHON:=python}"
  : "${JUDGE_URL:=http://127.0.0.1:8000/v1}"
  : "${JUDGE_MODEL_PATH:=Qwen/QwQ-32B}"
  : "${JUDGE_NNODES:=1}"
  : "${JUDGE_GPUS_PER_NODE:=8}"
  : "${JUDGE_TP:=2}"
  JUDGE_URL="${JUDGE_URL%/}"

  # Cluster-shape mistakes stop a launch; a dry run only warns, so every script prints its command anywhere.
  if [[ "$NNODES" -gt 1 && -z "${RAY_ADDRESS:-}" ]]; then
    refuse_or_warn "NNODES=$NNODES needs a running Ray cluster: start it (\`ray start --head\` on one node, \`ray start
  --address=<head>:6379\` on the others) and export RAY_ADDRESS=http://<head>:8265. docs/gpu_runs.md: From one node to many."
    RAY_ADDRESS="$PLACEHOLDER_RAY_ADDRESS"
  fi
  if [[ -n "${RAY_ADDRESS:-}" && "$JUDGE_PLACEMENT" == external && "$JUDGE_URL" =~ ://(localhost|127\.) ]]; then
    refuse_or_warn "JUDGE_URL=$JUDGE_URL is this machine, but on a Ray cluster the reward workers run on every node:
  use an address all nodes reach (serve_judge_vllm.sh prints one)."
  fi

  if [[ "$NNODES" -gt 1 && "$CKPT_DIR" == "$STORAGE_DIR/checkpoints/"* && "$STORAGE_DIR" == "$HOME/sgpo_runs" ]]; then
    refuse_or_warn "NNODES=$NNODES: set STORAGE_DIR (or CKPT_DIR) to shared storage every node writes; checkpoints
  of this size do not belong in the repository or a home folder. docs/gpu_runs.md: multi-node checklist."
  fi
  if [[ "$NNODES" -gt 1 && ! -d "$MODEL_PATH" ]]; then
    refuse_or_warn "MODEL_PATH=$MODEL_PATH is not a local folder: on $NNODES nodes each would download it (15-65 GB,
  and fail offline). Download it once to shared storage (hf download $MODEL_PATH --local-dir
  \$MODELS_DIR/${MODEL_PATH##*/}) and export MODELS_DIR (or MODEL_PATH)."
  fi

  set_judge_overrides "$JUDGE_PLACEMENT"
  if [[ "$JUDGE_PLACEMENT" != off ]]; then
    # The judge family's call settings (sampling, max_tokens, time-outs, retries, deadline): defined once,
    # in reward/judge/config.py.
    local family_settings
    family_settings="$(PYTHONPATH="$REPO_DIR" "$PYTHON" -W ignore::RuntimeWarning -m reward.judge.config \
      --family "$JUDGE_FAMILY")" || die "JUDGE_FAMILY=$JUDGE_FAMILY: see the message above"
    local -a family_overrides
    mapfile -t family_overrides <<<"$family_settings"
    JUDGE_OVERRIDES+=("${family_overrides[@]}")
  fi
  set_logger_override "$LOGGER"

  OVERRIDES=(
    # paths and cluster shape
    "actor_rollout_ref.model.path=$(hq "$MODEL_PATH")"
    "data.train_files=$TRAIN_FILES"
    "data.val_files=$VAL_FILES"
    "trainer.nnodes=$NNODES"
    "trainer.n_gpus_per_node=$GPUS_PER_NODE"
    "trainer.project_name=$(hq "$PROJECT_NAME")"
    "trainer.experiment_name=$(hq "$EXPERIMENT_NAME")"
    "trainer.default_local_dir=$(hq "$CKPT_DIR")"
    # sizes (run_scripts/models/*.sh)
    "${MODEL_OVERRIDES[@]}"
    # the same for every run, so tables compare like with like
    actor_rollout_ref.rollout.name=vllm
    data.filter_overlong_prompts=True  # drop (and count) prompts over max_prompt_length instead of failing
    # Validation during training: Avg@VAL_N on TRAIN_VAL_BENCHMARKS (the paper's metric is Avg@16). The
    # sampling settings are ours (DeepSeek's recommended 0.6 / 0.95 for R1-style models; the paper gives none).
    "actor_rollout_ref.rollout.val_kwargs.n=$VAL_N"
    actor_rollout_ref.rollout.val_kwargs.do_sample=True
    actor_rollout_ref.rollout.val_kwargs.temperature=0.6
    actor_rollout_ref.rollout.val_kwargs.top_p=0.95
    # No validation before step 1: for distilled models it is hours of 16k-token samples; the base
    # checkpoint's scores come from the evaluation command, once per model.
    trainer.val_before_train=False
    "data.val_batch_size=$VAL_BATCH_SIZE"
    trainer.max_actor_ckpt_to_keep=2  # ours: a 32B checkpoint with optimizer state is about 0.4 TB
    # the algorithm (the launch script)
    "${ALGORITHM_OVERRIDES[@]}"
    "${JUDGE_OVERRIDES[@]}"
    "$LOGGER_OVERRIDE"
    # the command line last: it overrides anything above
    "$@"
  )

}

# Extra flags of the preflight (offline_common.sh: --no-offline-set-check in a dry run before the set exists).
PREFLIGHT_ARGS=()

# launch <run name> [hydra overrides...]
launch() {
  local run_name="$1"
  shift
  : "${EXPERIMENT_NAME:=$run_name}"
  build_overrides "$@"
  local overrides=("${OVERRIDES[@]}")
  local env_prefix=(env "VERL_USE_EXTERNAL_MODULES=$PLUGIN_MODULE" "PYTHONPATH=$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}")
  local preflight=("${env_prefix[@]}" "$PYTHON" -m recipe.sgpo.preflight "${PREFLIGHT_ARGS[@]}" "${overrides[@]}")
  local command
  if [[ -n "${RAY_ADDRESS:-}" ]]; then
    # With RAY_SHIP_REPO=1 the job runs inside the uploaded copy, so the config dir is given relative to
    # the job's working directory (--config-dir is read relative to it; --config-path would not be).
    local config_arg="--config-path=$CONFIG_DIR"
    [[ "${RAY_SHIP_REPO:-0}" == 1 ]] && config_arg="--config-dir=recipe/sgpo/config"
    command=(ray job submit "--address=$RAY_ADDRESS" "--runtime-env-json=$(ray_runtime_env_json)" --
      "$PYTHON" -m verl.trainer.main_ppo "$config_arg" "--config-name=$CONFIG_NAME" "${overrides[@]}")
  else
    command=("${env_prefix[@]}" "$PYTHON" -m verl.trainer.main_ppo "--config-path=$CONFIG_DIR"
      "--config-name=$CONFIG_NAME" "${overrides[@]}")
  fi

  echo "[sgpo] $run_name: preflight" >&2
  "${preflight[@]}" || die "preflight failed for $run_name; fix the keys listed above"

  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    echo "[sgpo] DRY_RUN=1: the command (not run):" >&2
    printf '%q ' "${command[@]}"
    echo
    return 0
  fi
  [[ "$JUDGE_PLACEMENT" != external ]] || check_judge_reachable
  exec "${command[@]}"
}
