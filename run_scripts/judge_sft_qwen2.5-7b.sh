#!/usr/bin/env bash
# Train a 7B step-wise judge (Qwen2.5-7B-Instruct) with verl 0.9.1's own SFT trainer, 1 node x 8 GPUs
# (docs/judge_training.md). Settings are estimates from verl's SFT examples, not tuned runs.
#   DRY_RUN=1 bash run_scripts/judge_sft_qwen2.5-7b.sh     # check the config, print the commands, run nothing
#   bash run_scripts/judge_sft_qwen2.5-7b.sh [hydra overrides of verl's sft_trainer]
#
# Environment (default in brackets):
#   MODEL_PATH      the judge's starting model, folder or hub id [$MODELS_DIR/Qwen2.5-7B-Instruct, else the hub id]
#   DATA_DIR        where `python -m data_prep write judge_prm800k judge_math_shepherd` wrote    [data]
#   JUDGE_DATASETS  judge-example sets trained on, space-separated        [judge_prm800k judge_math_shepherd]
#   MAX_LENGTH      tokens of prompt + verdict (longer rows are dropped and counted by the fit step) [4096]
#   GPUS_PER_NODE   GPUs of the node                                      [8]
#   STORAGE_DIR     checkpoints and fitted files                          [$HOME/sgpo_runs]
#   CKPT_DIR        the run's folder                                      [$STORAGE_DIR/judge_sft/qwen2.5-7b]
#   PYTHON          the Python that has verl and this recipe              [python]
#   DRY_RUN         1: compose and check the config, print the commands, run nothing [0]
set -euo pipefail
RUN_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$RUN_SCRIPTS_DIR/.." && pwd)"
CONFIG_DIR="$REPO_DIR/recipe/sgpo/config"
: "${PYTHON:=python}"
: "${MODEL_PATH:=${MODELS_DIR:+$MODELS_DIR/Qwen2.5-7B-Instruct}}"
: "${MODEL_PATH:=Qwen/Qwen2.5-7B-Instruct}"
: "${DATA_DIR:=$REPO_DIR/data}"
: "${JUDGE_DATASETS:=judge_prm800k judge_math_shepherd}"
: "${MAX_LENGTH:=4096}"
: "${GPUS_PER_NODE:=8}"
: "${STORAGE_DIR:=$HOME/sgpo_runs}"
: "${CKPT_DIR:=$STORAGE_DIR/judge_sft/qwen2.5-7b}"
export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"

SOURCES=()
FITTED=()
for name in $JUDGE_DATASETS; do
  SOURCES+=("$DATA_DIR/$name/train.parquet")
  FITTED+=("$CKPT_DIR/fit/$name-train.parquet")
done
fitted_list="[$(IFS=,; echo "${FITTED[*]}")]"

# 7B on 8 GPUs: FSDP2 with remove-padding (flash-attention varlen) and gradient checkpointing; dynamic
# batches of at most 16k tokens per GPU; 64 conversations a step; 2 epochs (estimates: verl's SFT examples).
OVERRIDES=(
  "model.path=$MODEL_PATH"
  "data.train_files=$fitted_list"
  "data.max_length=$MAX_LENGTH"
  data.train_batch_size=64
  data.micro_batch_size_per_gpu=2
  data.use_dynamic_bsz=true
  data.max_token_len_per_gpu=16384
  engine.strategy=fsdp2
  model.use_remove_padding=true
  model.enable_gradient_checkpointing=true
  optim.lr=1e-5
  trainer.total_epochs=2
  trainer.save_freq=500
  "trainer.n_gpus_per_node=$GPUS_PER_NODE"
  trainer.experiment_name=judge_qwen2.5-7b
  "trainer.default_local_dir=$CKPT_DIR/checkpoints"
  "$@"
)
FIT=("$PYTHON" -m recipe.sgpo.judge_sft.fit --model "$MODEL_PATH" --max-length "$MAX_LENGTH" --out "$CKPT_DIR/fit" "${SOURCES[@]}")
TRAIN=(torchrun --standalone --nnodes=1 "--nproc_per_node=$GPUS_PER_NODE" -m verl.trainer.sft_trainer
  "--config-path=$CONFIG_DIR" --config-name=judge_sft "${OVERRIDES[@]}")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  "$PYTHON" -m recipe.sgpo.judge_sft.check --gpus "$GPUS_PER_NODE" "${OVERRIDES[@]}"
  echo "[judge-sft] dry run: the commands are"
  printf '%q ' "${FIT[@]}"; echo
  printf '%q ' "${TRAIN[@]}"; echo
  exit 0
fi
"${FIT[@]}"
"$PYTHON" -m recipe.sgpo.judge_sft.check --gpus "$GPUS_PER_NODE" --require-files "${OVERRIDES[@]}"
exec "${TRAIN[@]}"
