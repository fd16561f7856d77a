"""Estimated peak GPU memory of each launch script's policy GPUs (the table in docs/gpu_runs.md comes from this).

    python run_scripts/estimate_memory.py          # prints the rows of the table in docs/gpu_runs.md

An estimate, not a measurement: a back-of-the-envelope model of verl 0.9.1's hybrid engine (FSDP actor
and vLLM rollout taking turns on the same GPUs), written down so every number in docs/gpu_runs.md can be
re-derived and checked against the scripts (tests/test_launch_scripts_on_cpu.py compares the settings
below with each script's printed command). Expect real peaks within about ±25 %: allocator
fragmentation, NCCL buffers and vLLM's CUDA graphs vary with versions and drivers.

Per GPU, with ``P`` parameters sharded by FSDP over ``N`` GPUs (units: bytes; printed in GB = 1e9 B):

* training phase: fp32 weights and gradients ``8 P / N`` + Adam's two fp32 moments ``8 P / N`` (on the
  GPU only for the optimizer step when ``optimizer_offload``) + activations for ``T`` tokens (the
  dynamic-batch budget ``ppo_max_token_len_per_gpu``): with gradient checkpointing each layer keeps its
  bf16 input, ``2 L h`` bytes a token, and one layer is recomputed at a time, ``2 (6 h + 3 f)`` bytes a
  token; logits and their gradient in bf16, ``4 V`` bytes a token (verl computes log-probs with a fused
  cross-entropy that does not keep an fp32 copy) + a fixed overhead (CUDA context, NCCL, fragmentation);
* rollout phase: vLLM's share ``u × 80 GB`` (weights and KV cache) + what the actor keeps on the GPU
  while vLLM runs: fp32 weights ``4 P / N`` unless ``param_offload``, Adam ``8 P / N`` unless
  ``optimizer_offload`` (gradients are freed after the step) + the fixed overhead;
* the peak is the larger of the two. The judge's GPUs (standalone placement) are not counted: vLLM
  takes ``0.85 × 80 GB`` of each.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Memory of one GPU of the clusters the scripts are sized for (8 x 80 GB nodes), bytes.
GPU_MEMORY_BYTES = 80e9
#: CUDA context, NCCL buffers, allocator fragmentation: a fixed allowance per GPU, bytes.
FIXED_OVERHEAD_BYTES = 5e9
#: fp32 weights + fp32 gradients, bytes per parameter (FSDP keeps fp32 master weights; bf16 compute).
WEIGHTS_AND_GRADS_BYTES = 8
#: fp32 weights alone, bytes per parameter.
WEIGHTS_BYTES = 4
#: Adam's first and second moments in fp32, bytes per parameter.
ADAM_BYTES = 8
#: bf16 element size, bytes.
BF16 = 2
#: Elements per token of one recomputed layer: q, k, v, attention output, two norms (6 h) and the MLP's
#: gate, up and activation (3 f).
RECOMPUTE_HIDDEN_FACTOR = 6
RECOMPUTE_FFN_FACTOR = 3
#: bf16 logits and their gradient, elements per token per vocabulary entry.
LOGITS_FACTOR = 2
GB = 1e9


@dataclass(frozen=True)
class Architecture:
    """Public config.json values of a model family member."""

    params: float
    layers: int
    hidden: int
    ffn: int
    vocab: int


#: Qwen2.5 sizes; DeepSeek-R1-Distill-Qwen-7B/14B/32B share Qwen2.5-Math-7B's / Qwen2.5-14B's / -32B's shapes.
QWEN25_7B = Architecture(params=7.62e9, layers=28, hidden=3584, ffn=18944, vocab=152064)
QWEN25_14B = Architecture(params=14.8e9, layers=48, hidden=5120, ffn=13824, vocab=152064)
QWEN25_32B = Architecture(params=32.8e9, layers=64, hidden=5120, ffn=27648, vocab=152064)


@dataclass(frozen=True)
class RunShape:
    """The size-dependent settings of one model file (run_scripts/models/<name>.sh)."""

    model_file: str
    arch: Architecture
    nnodes: int
    rollout_tp: int
    sp: int
    token_budget: int
    param_offload: bool
    optimizer_offload: bool
    rollout_memory_share: float
    gpus_per_node: int = 8

    @property
    def gpus(self) -> int:
        return self.nnodes * self.gpus_per_node


#: One entry per model file; the test checks these against the scripts' commands.
RUN_SHAPES = (
    RunShape("qwen2.5-7b", QWEN25_7B, 1, 2, 1, 24576, False, False, 0.6),
    RunShape("qwen2.5-math-7b", QWEN25_7B, 1, 2, 1, 24576, False, False, 0.6),
    RunShape("qwen2.5-14b", QWEN25_14B, 1, 4, 1, 16384, False, True, 0.7),
    RunShape("qwen2.5-32b", QWEN25_32B, 2, 4, 1, 16384, True, True, 0.8),
    RunShape("r1-distill-qwen-7b", QWEN25_7B, 1, 2, 2, 24576, False, True, 0.8),
    RunShape("r1-distill-qwen-14b", QWEN25_14B, 2, 4, 4, 16384, False, True, 0.8),
    RunShape("r1-distill-qwen-32b", QWEN25_32B, 4, 4, 8, 16384, True, True, 0.8),
)


def training_phase_bytes(shape: RunShape) -> float:
    """Peak of the actor's forward/backward and optimizer step, bytes per GPU."""
    arch, n = shape.arch, shape.gpus
    weights_and_grads = WEIGHTS_AND_GRADS_BYTES * arch.params / n
    adam = ADAM_BYTES * arch.params / n
    per_token = (
        BF16 * arch.layers * arch.hidden
        + BF16 * (RECOMPUTE_HIDDEN_FACTOR * arch.hidden + RECOMPUTE_FFN_FACTOR * arch.ffn)
        + BF16 * LOGITS_FACTOR * arch.vocab
    )
    activations = per_token * shape.token_budget
    if shape.optimizer_offload:  # Adam comes back only for the step, when the activations are gone
        return weights_and_grads + max(activations, adam) + FIXED_OVERHEAD_BYTES
    return weights_and_grads + adam + activations + FIXED_OVERHEAD_BYTES


def rollout_phase_bytes(shape: RunShape) -> float:
    """vLLM's share plus what the actor keeps on the GPU while vLLM generates, bytes per GPU."""
    arch, n = shape.arch, shape.gpus
    resident = 0.0 if shape.param_offload else WEIGHTS_BYTES * arch.params / n
    resident += 0.0 if shape.optimizer_offload else ADAM_BYTES * arch.params / n
    return shape.rollout_memory_share * GPU_MEMORY_BYTES + resident + FIXED_OVERHEAD_BYTES


def peak_gb(shape: RunShape) -> tuple[float, str]:
    """The estimated peak in GB and the phase that sets it."""
    train, rollout = training_phase_bytes(shape), rollout_phase_bytes(shape)
    return (train / GB, "training") if train >= rollout else (rollout / GB, "rollout")


def main() -> None:
    print("| model file | nodes × GPUs | training phase | rollout phase | estimated peak |")
    print("|---|---|---|---|---|")
    for shape in RUN_SHAPES:
        peak, phase = peak_gb(shape)
        print(
            f"| `{shape.model_file}` | {shape.nnodes} × {shape.gpus_per_node} "
            f"| {training_phase_bytes(shape) / GB:.0f} GB | {rollout_phase_bytes(shape) / GB:.0f} GB "
            f"| ~{peak:.0f} GB ({phase}) |"
        )


if __name__ == "__main__":
    main()
