"""A tiny Qwen2-shaped policy with random weights and a byte-level tokenizer, built offline in seconds.

For end-to-end checks of the CPU trainer (tests, ``--model tiny`` of the main job): it exercises the
same code path as a real model (transformers ``Qwen2ForCausalLM``, a fast tokenizer with a ChatML chat
template, ``generation_config.json``) but learns nothing useful. Its tokenizer is byte-level BPE with
no merges, so any text round-trips exactly; the vocabulary is the 256 byte symbols plus the ChatML
special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

#: ChatML special tokens (the same template SmolLM2 and Qwen2 use). The end-of-turn token is the eos.
IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
#: Shape of the tiny model (about 60 k parameters: fast enough for 2-core CI, big enough to be a transformer).
TINY_SHAPE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
)
#: Marker written last: its presence means the folder is complete.
DONE_MARKER = ".tiny-policy.json"


def build_tokenizer():
    """Byte-level BPE without merges (every byte one token) plus ChatML specials, as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=IM_END, pad_token=PAD, bos_token=None, unk_token=None
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END, PAD]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_policy(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny policy (model, tokenizer, generation config) to ``out_dir``; cached by a marker."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    settings = {"seed": seed, **TINY_SHAPE}
    marker = out_dir / DONE_MARKER
    if marker.exists() and json.loads(marker.read_text()) == settings:
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    vocab_size = len(tokenizer)
    config = Qwen2Config(
        vocab_size=vocab_size,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
        **TINY_SHAPE,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id).save_pretrained(out_dir)
    marker.write_text(json.dumps(settings))
    return out_dir
