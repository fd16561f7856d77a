# shellcheck shell=bash disable=SC2034
# DeepSeek-R1-Distill-Qwen-14B on 2 nodes x 8 GPUs x 80 GB. Sourced by sgpo_ and
# grpo_r1-distill-qwen-14b.sh, so the baseline runs with exactly these settings. "ours" marks our choices
# (the paper does not give them); the memory estimate behind them: run_scripts/estimate_memory.py.
MODEL_HUB_ID=deepseek-ai/DeepSeek-R1-Distill-Qwen-14B
# A local copy on shared storage when MODELS_DIR is set (multi-node launches require one), else the hub id.
: "${MODEL_PATH:=${MODELS_DIR:+$MODELS_DIR/${MODEL_HUB_ID##*/}}}"
: "${MODEL_PATH:=$MODEL_HUB_ID}"
: "${NNODES:=2}"
# Distilled models train on DeepScaleR (ours), written with the boxed instruction:
#   python -m data_prep write deepscaler benchmarks --template boxed --out data/boxed
: "${DATA_DIR:=$REPO_DIR/data/boxed}"
: "${TRAIN_FILES:=$(hydra_files train deepscaler)}"

max_prompt_length=1024
max_response_length=16384   # ours: as the 7B distilled run (see r1-distill-qwen-7b.sh)

MODEL_OVERRIDES=(
  "data.max_prompt_length=$max_prompt_length"
  "data.max_response_length=$max_response_length"
  data.train_batch_size=64                     # prompts per step (ours): 512 long responses with n = 8
  actor_rollout_ref.rollout.n=8                # group size (ours)
  actor_rollout_ref.actor.ppo_mini_batch_size=16   # prompts per policy update: 4 updates a step (ours)
  actor_rollout_ref.actor.optim.lr=1e-6        # ours
  actor_rollout_ref.actor.use_kl_loss=False    # ours: no reference model (see qwen2.5-7b.sh)
  actor_rollout_ref.actor.kl_loss_coef=0.0
  # Ulysses sequence parallelism over 4 GPUs: 16k tokens a GPU, 64k per group of 4 (3.7 full-length
  # sequences; the anchors pack 20k+ a GPU at smaller SP).
  actor_rollout_ref.actor.use_dynamic_bsz=True
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=4
  actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size=4
  # 14B over 16 GPUs is 15 GB of sharded training state a GPU; Adam's 7.4 GB go to CPU memory while
  # vLLM generates, for its KV cache.
  actor_rollout_ref.actor.fsdp_config.param_offload=False
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=True
  # vLLM: 14B weights (30 GB) split over 4 GPUs; 4 replicas on the two nodes.
  actor_rollout_ref.rollout.tensor_model_parallel_size=4
  # 80 % (verl-recipe dapo's value): long responses are KV-cache bound.
  actor_rollout_ref.rollout.gpu_memory_utilization=0.8
  # A wrong response waits for the rest of its group before the judge may see it (judge_scope
  # all_negative_groups); 16k-token groups can spread over more than the default 10 minutes (ours).
  reward.sgpo.group_wait_s=3600
  trainer.total_epochs=1                       # 630 steps on DeepScaleR (ours)
  trainer.test_freq=50
  trainer.save_freq=50
)
