#!/usr/bin/env bash
# Offline SGPO on qwen2.5-7b (base model): generate once, judge once, train on the stored set (docs/offline.md).
# Sizes: run_scripts/models/qwen2.5-7b.sh (the online script's). Environment: run_scripts/offline_common.sh, common.sh.
#   DRY_RUN=1 STAGE=train bash run_scripts/offline_sgpo_qwen2.5-7b.sh          # check the config, print the command
#   STAGE=generate bash run_scripts/offline_sgpo_qwen2.5-7b.sh                 # responses of the starting policy
#   STAGE=judge JUDGE_URL=http://<judge>:8000/v1 bash run_scripts/offline_sgpo_qwen2.5-7b.sh
#   STAGE=train bash run_scripts/offline_sgpo_qwen2.5-7b.sh [hydra overrides]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$RUN_SCRIPTS_DIR/models/qwen2.5-7b.sh"
source "$RUN_SCRIPTS_DIR/offline_common.sh"

ALGORITHM_OVERRIDES=(
  algorithm.adv_estimator=sgpo   # recipe/sgpo/advantage.py, the same estimator as online
)
offline_launch offline_sgpo_qwen2.5-7b math_train "$@"
