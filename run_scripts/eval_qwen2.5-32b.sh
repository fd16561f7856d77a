#!/usr/bin/env bash
# Avg@16 of one Qwen2.5-32B checkpoint (or the model itself) on the eight benchmarks, with the base family's sampling
# defaults (recipe/sgpo/eval/families.py). Environment: run_scripts/eval_common.sh. Resumable: re-run to go on.
#   DRY_RUN=1 bash run_scripts/eval_qwen2.5-32b.sh                               # check inputs, print the command
#   CHECKPOINT=checkpoints/sgpo/sgpo_qwen2.5-32b/global_step_200/actor METHOD=SGPO bash run_scripts/eval_qwen2.5-32b.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$RUN_SCRIPTS_DIR/models/qwen2.5-32b.sh"
source "$RUN_SCRIPTS_DIR/eval_common.sh"
eval_launch qwen2.5-32b base "$@"
