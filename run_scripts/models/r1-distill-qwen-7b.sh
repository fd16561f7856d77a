# shellcheck shell=bash disable=SC2034
# DeepSeek-R1-Distill-Qwen-7B on 1 node x 8 GPUs x 80 GB. Sourced by sgpo_ and grpo_r1-distill-qwen-7b.sh,
# so the baseline runs with exactly these settings. "ours" marks our choices (the paper does not give
# them); the memory estimate behind them: run_scripts/estimate_memory.py (docs/gpu_runs.md).
MODEL_HUB_ID=deepseek-ai/DeepSeek-R1-Distill-Qwen-7B
# A local copy on shared storage when MODELS_DIR is set (multi-node launches require one), else the hub id.
: "${MODEL_PATH:=${MODELS_DIR:+$MODELS_DIR/${MODEL_HUB_ID##*/}}}"
: "${MODEL_PATH:=$MODEL_HUB_ID}"
: "${NNODES:=1}"
# Distilled models train on DeepScaleR (ours), written with the boxed instruction in the model's own chat
# template (which opens the <think> block):
#   python -m data_prep write deepscaler benchmarks --template boxed --out data/boxed
: "${DATA_DIR:=$REPO_DIR/data/boxed}"
: "${TRAIN_FILES:=$(hydra_files train deepscaler)}"

max_prompt_length=1024
# Ours: distilled models think at length; 16k tokens keeps most AIME-level answers whole (DeepSeek
# evaluates them at 32k; raise this and the token budgets below together to train longer).
max_response_length=16384

MODEL_OVERRIDES=(
  "data.max_prompt_length=$max_prompt_length"
  "data.max_response_length=$max_response_length"
  data.train_batch_size=64                     # prompts per step (ours): 512 long responses with n = 8
  actor_rollout_ref.rollout.n=8                # group size (ours)
  actor_rollout_ref.actor.ppo_mini_batch_size=16   # prompts per policy update: 4 updates a step (ours)
  actor_rollout_ref.actor.optim.lr=1e-6        # ours
  actor_rollout_ref.actor.use_kl_loss=False    # ours: no reference model (see qwen2.5-7b.sh)
  actor_rollout_ref.actor.kl_loss_coef=0.0
  # Ulysses sequence parallelism over 2 GPUs: each holds half of a 17k-token sequence; the 24k per-GPU
  # budget (48k per pair, DeepScaleR 16k's 32k per GPU at 1.5B scaled to 7B) packs 2.8 full-length ones.
  actor_rollout_ref.actor.use_dynamic_bsz=True
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=24576
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=49152
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=49152
  actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2
  actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size=2
  actor_rollout_ref.actor.fsdp_config.param_offload=False
  # Adam state (7.6 GB a GPU) to CPU memory while vLLM generates: the KV cache of 17k-token sequences
  # gets that room (one host-device copy a step).
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=True
  # vLLM: 2 GPUs a replica (the KV cache of long responses needs the room); 4 replicas.
  actor_rollout_ref.rollout.tensor_model_parallel_size=2
  # 80 % (verl-recipe dapo's value; DeepScaleR: 85 %): long responses are KV-cache bound.
  actor_rollout_ref.rollout.gpu_memory_utilization=0.8
  # A wrong response waits for the rest of its group before the judge may see it (judge_scope
  # all_negative_groups); 16k-token groups can spread over more than the default 10 minutes (ours).
  reward.sgpo.group_wait_s=3600
  trainer.total_epochs=1                       # 40,315 DeepScaleR prompts / 64 = 630 steps (ours)
  trainer.test_freq=50                         # a validation pass is 16 long samples of 1,607 problems
  trainer.save_freq=50
)
