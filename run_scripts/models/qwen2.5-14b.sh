# shellcheck shell=bash disable=SC2034
# Qwen2.5-14B (base model) on 1 node x 8 GPUs x 80 GB. Sourced by sgpo_ and grpo_qwen2.5-14b.sh, so the
# baseline runs with exactly these settings. "ours" marks our choices (the paper does not give them);
# the memory estimate behind them: run_scripts/estimate_memory.py (docs/gpu_runs.md).
MODEL_HUB_ID=Qwen/Qwen2.5-14B
# A local copy on shared storage when MODELS_DIR is set (multi-node launches require one), else the hub id.
: "${MODEL_PATH:=${MODELS_DIR:+$MODELS_DIR/${MODEL_HUB_ID##*/}}}"
: "${MODEL_PATH:=$MODEL_HUB_ID}"
: "${NNODES:=1}"
# Base models train on MATH (ours), written with the Qwen-math template that base models answer in:
#   python -m data_prep write math_train benchmarks --template qwen_math --out data/qwen_math
: "${DATA_DIR:=$REPO_DIR/data/qwen_math}"
: "${TRAIN_FILES:=$(hydra_files train math_train)}"

max_prompt_length=1024
max_response_length=3072   # ours: as the 7B base run, so the three base sizes compare like with like

MODEL_OVERRIDES=(
  "data.max_prompt_length=$max_prompt_length"
  "data.max_response_length=$max_response_length"
  data.train_batch_size=128                    # prompts per step (ours): 1,024 responses with n = 8
  actor_rollout_ref.rollout.n=8                # group size (ours)
  actor_rollout_ref.actor.ppo_mini_batch_size=32   # prompts per policy update: 4 updates a step (ours)
  actor_rollout_ref.actor.optim.lr=1e-6        # ours
  actor_rollout_ref.actor.use_kl_loss=False    # ours: no reference model (see qwen2.5-7b.sh)
  actor_rollout_ref.actor.kl_loss_coef=0.0
  # Dynamic batches; 12k training tokens per GPU (three full-length sequences) keeps activations and
  # logits near 20 GB next to the 30 GB of sharded training state.
  actor_rollout_ref.actor.use_dynamic_bsz=True
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=1
  actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size=1
  # Adam state (15 GB a GPU here) goes to CPU memory while vLLM generates, so the rollout phase fits;
  # the weights stay on the GPU.
  actor_rollout_ref.actor.fsdp_config.param_offload=False
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=True
  # vLLM: 14B weights (30 GB) split over 4 GPUs; 2 replicas on the node.
  actor_rollout_ref.rollout.tensor_model_parallel_size=4
  # 70 % (not verl's 60 %): the offloaded Adam state's 15 GB go to the KV cache (estimate: 68 GB peak).
  actor_rollout_ref.rollout.gpu_memory_utilization=0.7
  trainer.total_epochs=10                      # 58 steps an epoch on MATH (ours)
  trainer.test_freq=20
  trainer.save_freq=50
)
