#!/usr/bin/env bash
# Avg@16 of one DeepSeek-R1-Distill-Qwen-14B checkpoint (or the model itself) on the eight benchmarks, with the distilled family's sampling
# defaults (recipe/sgpo/eval/families.py). Environment: run_scripts/eval_common.sh. Resumable: re-run to go on.
#   DRY_RUN=1 bash run_scripts/eval_r1-distill-qwen-14b.sh                               # check inputs, print the command
#   CHECKPOINT=checkpoints/sgpo/sgpo_r1-distill-qwen-14b/global_step_200/actor METHOD=SGPO bash run_scripts/eval_r1-distill-qwen-14b.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$RUN_SCRIPTS_DIR/models/r1-distill-qwen-14b.sh"
source "$RUN_SCRIPTS_DIR/eval_common.sh"
eval_launch r1-distill-qwen-14b distilled "$@"
