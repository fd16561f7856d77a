# shellcheck shell=bash disable=SC2034
# Qwen2.5-7B (base model) on 1 node x 8 GPUs x 80 GB. Sourced by sgpo_, grpo_ and dapo_qwen2.5-7b.sh, so the
# baselines run with exactly these settings. "ours" marks our choices (the paper does not give them);
# the memory estimate behind them: run_scripts/estimate_memory.py (docs/gpu_runs.md).
# qwen2.5-math-7b.sh sets MODEL_HUB_ID before it sources this file (same sizes, another model).
: "${MODEL_HUB_ID:=Qwen/Qwen2.5-7B}"
# A local copy on shared storage when MODELS_DIR is set (multi-node launches require one), else the hub id.
: "${MODEL_PATH:=${MODELS_DIR:+$MODELS_DIR/${MODEL_HUB_ID##*/}}}"
: "${MODEL_PATH:=$MODEL_HUB_ID}"
: "${NNODES:=1}"
# Base models train on MATH (ours), written with the Qwen-math template that base models answer in:
#   python -m data_prep write math_train benchmarks --template qwen_math --out data/qwen_math
: "${DATA_DIR:=$REPO_DIR/data/qwen_math}"
: "${TRAIN_FILES:=$(hydra_files train math_train)}"

max_prompt_length=1024
# Ours. 1k + 3k = 4,096 tokens also fits Qwen2.5-Math-7B (max_position_embeddings 4,096: longer responses
# would be cut at the context end -- the known trap); Qwen2.5-7B itself has 131,072 positions.
max_response_length=3072

MODEL_OVERRIDES=(
  "data.max_prompt_length=$max_prompt_length"
  "data.max_response_length=$max_response_length"
  data.train_batch_size=128                    # prompts per step (ours): 1,024 responses with n = 8
  actor_rollout_ref.rollout.n=8                # group size (ours)
  actor_rollout_ref.actor.ppo_mini_batch_size=32   # prompts per policy update: 4 updates a step (ours)
  actor_rollout_ref.actor.optim.lr=1e-6        # ours; the common GRPO value at this size
  # No KL loss (ours, as DAPO and Dr. GRPO): no reference model to hold or run. Set both keys on the
  # command line to add one (verl's examples use use_kl_loss=True kl_loss_coef=0.001).
  actor_rollout_ref.actor.use_kl_loss=False
  actor_rollout_ref.actor.kl_loss_coef=0.0
  # Dynamic batches: micro-batches packed up to a token budget per GPU instead of a fixed count.
  # Training: 24k tokens = six full-length sequences, the anchor's value (verl examples/grpo_trainer
  # run_qwen2-7b_seq_balance.sh: 24,000); log-probs (no gradients): twice that (perf_tuning.rst).
  actor_rollout_ref.actor.use_dynamic_bsz=True
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=24576
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=49152
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=49152
  # 4k-token sequences need no sequence parallelism; 15 GB of sharded weights, gradients and Adam
  # state per GPU need no offloading.
  actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=1
  actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size=1
  actor_rollout_ref.actor.fsdp_config.param_offload=False
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=False
  # vLLM: 7B weights (15 GB) split over 2 GPUs; 4 replicas on the node. 60 % of each GPU for vLLM
  # (weights + KV cache) next to the actor's resident 11 GB, verl's example value: 4k-token responses
  # are not KV-cache bound, and nothing is offloaded whose room vLLM could use.
  actor_rollout_ref.rollout.tensor_model_parallel_size=2
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6
  trainer.total_epochs=10                      # 7,500 MATH prompts / 128 = 58 steps an epoch (ours)
  trainer.test_freq=20
  trainer.save_freq=50
)
