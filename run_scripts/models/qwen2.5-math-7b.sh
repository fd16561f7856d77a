# shellcheck shell=bash disable=SC2034
# Qwen2.5-Math-7B (base model) on 1 node x 8 GPUs x 80 GB: the sizes of Qwen2.5-7B (qwen2.5-7b.sh, sourced
# below, with every setting's anchor and reason), with this model. Sourced by sgpo_ and grpo_qwen2.5-math-7b.sh,
# so the baseline runs with exactly these settings.
# The base most zero-RL anchors train (Oat-Zero, Dr. GRPO, LUFFY, SimpleRL-Zoo) and, we estimate, the
# paper's table (docs/gpu_runs.md "Which 7B base"). Its context is 4,096 positions: prompt + response in
# qwen2.5-7b.sh are exactly that (1,024 + 3,072), and the preflight refuses more (hub ids included).
MODEL_HUB_ID=Qwen/Qwen2.5-Math-7B
source "$(dirname "${BASH_SOURCE[0]}")/qwen2.5-7b.sh"
