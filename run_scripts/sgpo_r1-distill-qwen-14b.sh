#!/usr/bin/env bash
# SGPO on DeepSeek-R1-Distill-Qwen-14B, 2 nodes x 8 GPUs; the step-wise judge where JUDGE_PLACEMENT puts it (external
# by default). Sizes: run_scripts/models/r1-distill-qwen-14b.sh. Environment variables: run_scripts/common.sh.
#   DRY_RUN=1 bash run_scripts/sgpo_r1-distill-qwen-14b.sh                    # check the config, print the command
#   JUDGE_URL=http://<judge>:8000/v1 bash run_scripts/sgpo_r1-distill-qwen-14b.sh [hydra overrides]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$RUN_SCRIPTS_DIR/models/r1-distill-qwen-14b.sh"

: "${JUDGE_PLACEMENT:=external}"
ALGORITHM_OVERRIDES=(
  algorithm.adv_estimator=sgpo   # recipe/sgpo/advantage.py; its settings algorithm.sgpo.* are in the yaml
)
launch sgpo_r1-distill-qwen-14b "$@"
