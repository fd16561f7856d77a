#!/usr/bin/env bash
# SGPO on Qwen2.5-Math-7B (base model), 1 node x 8 GPUs; the step-wise judge where JUDGE_PLACEMENT puts it (external
# by default). Sizes: run_scripts/models/qwen2.5-math-7b.sh. Environment variables: run_scripts/common.sh.
#   DRY_RUN=1 bash run_scripts/sgpo_qwen2.5-math-7b.sh                    # check the config, print the command
#   JUDGE_URL=http://<judge>:8000/v1 bash run_scripts/sgpo_qwen2.5-math-7b.sh [hydra overrides]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$RUN_SCRIPTS_DIR/models/qwen2.5-math-7b.sh"

: "${JUDGE_PLACEMENT:=external}"
ALGORITHM_OVERRIDES=(
  algorithm.adv_estimator=sgpo   # recipe/sgpo/advantage.py; its settings algorithm.sgpo.* are in the yaml
)
launch sgpo_qwen2.5-math-7b "$@"
