#!/usr/bin/env bash
# DAPO-style baseline on Qwen2.5-7B (base model), 1 node x 8 GPUs: GRPO with DAPO's dynamic sampling
# (verl's algorithm.filter_groups) and clip-higher, scored by the same reward manager and grader as SGPO
# with the judge off. Sizes: run_scripts/models/qwen2.5-7b.sh (shared with sgpo_ and grpo_qwen2.5-7b.sh).
# Not included: DAPO's overlong reward shaping (our reward manager scores a cut-off response as wrong,
# without a soft length penalty). Environment variables: run_scripts/common.sh.
#   DRY_RUN=1 bash run_scripts/dapo_qwen2.5-7b.sh                  # check the config, print the command
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$RUN_SCRIPTS_DIR/models/qwen2.5-7b.sh"

JUDGE_PLACEMENT=off   # a baseline never calls the judge, whatever the environment says
ALGORITHM_OVERRIDES=(
  algorithm.adv_estimator=grpo   # with JUDGE_PLACEMENT=off: reward.sgpo.judge_scope=off, rewards 1 or 0
  # Dynamic sampling: verl 0.9.1's V1 replay buffer drops every group whose responses share one value
  # of the metric (all right or all wrong: zero advantage) and generates more prompts until the batch
  # is full. `acc` is our reward manager's per-response correctness (reward extra info).
  algorithm.filter_groups.enable=True
  algorithm.filter_groups.metric=acc
  # Up to 3 training batches of prompts in flight while filling one: the role of DAPO's
  # gen_batch_size = 3 x train_batch_size (the V1 buffer ignores max_num_gen_batches).
  algorithm.filter_groups.max_inflight_gen_batches=3
  # DAPO's decoupled clip ("clip-higher") and token-level loss aggregation.
  actor_rollout_ref.actor.clip_ratio_low=0.2
  actor_rollout_ref.actor.clip_ratio_high=0.28
  actor_rollout_ref.actor.loss_agg_mode=token-mean
)
launch dapo_qwen2.5-7b "$@"
