#!/usr/bin/env bash
# GRPO baseline on DeepSeek-R1-Distill-Qwen-32B, 4 nodes x 8 GPUs: verl's own estimator, scored by the same reward manager
# and grader as SGPO with the judge off, so only the estimator differs. Sizes: run_scripts/models/r1-distill-qwen-32b.sh
# (shared with sgpo_r1-distill-qwen-32b.sh). Environment variables: run_scripts/common.sh.
#   DRY_RUN=1 bash run_scripts/grpo_r1-distill-qwen-32b.sh                    # check the config, print the command
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$RUN_SCRIPTS_DIR/models/r1-distill-qwen-32b.sh"

JUDGE_PLACEMENT=off   # a baseline never calls the judge, whatever the environment says
ALGORITHM_OVERRIDES=(
  algorithm.adv_estimator=grpo   # with JUDGE_PLACEMENT=off: reward.sgpo.judge_scope=off, rewards 1 or 0
)
launch grpo_r1-distill-qwen-32b "$@"
