#!/usr/bin/env bash
# GRPO baseline on Qwen2.5-Math-7B (base model), 1 node x 8 GPUs: verl's own estimator, scored by the same reward manager
# and grader as SGPO with the judge off, so only the estimator differs. Sizes: run_scripts/models/qwen2.5-math-7b.sh
# (shared with sgpo_qwen2.5-math-7b.sh). Environment variables: run_scripts/common.sh.
#   DRY_RUN=1 bash run_scripts/grpo_qwen2.5-math-7b.sh                    # check the config, print the command
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$RUN_SCRIPTS_DIR/models/qwen2.5-math-7b.sh"

JUDGE_PLACEMENT=off   # a baseline never calls the judge, whatever the environment says
ALGORITHM_OVERRIDES=(
  algorithm.adv_estimator=grpo   # with JUDGE_PLACEMENT=off: reward.sgpo.judge_scope=off, rewards 1 or 0
)
launch grpo_qwen2.5-math-7b "$@"
