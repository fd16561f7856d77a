"""The CPU judge's starting point: an untrained small transformer with a tokenizer made for the judge prompt.

No model hub is reachable from the machines this runs on, and the packaged SmolLM2-135M is too slow to
fine-tune on two cores (about 450 tokens per judge prompt through 135 M parameters). The CPU chain
therefore trains a judge from scratch, and this module builds its untrained start, once and in seconds:

* **Tokenizer**: byte-level BPE with one token per digit (data_prep.arith_policy.build_tokenizer, the CPU
  policy's rule), merges learned from the rendered training conversations, ChatML chat template; the
  judge template's constant passages (``reward/judge/prompts/step_judge_<version>.txt`` split at its
  placeholders) are single tokens, so a prompt is about a hundred tokens instead of a thousand. A judge
  built this way is made for one prompt version (recorded in the marker file).
* **Model**: a Qwen2-shaped causal LM (served by vLLM like any Qwen2 model), random weights from a fixed seed.

Its judge-benchmark score before training is that of random weights (no verdict line): the measured
"before" of the CPU chain. The folder is cached: the marker ``.judge-base.json`` holds the settings, and a
call with the same settings returns at once. CLI::

    python -m recipe.sgpo.judge_sft.base_model --train-file data/judge_arith/train.parquet --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Marker written last; its presence (with the same settings) means the folder is complete.
DONE_MARKER = ".judge-base.json"
#: Default folder (``/cache/`` is git-ignored).
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "cache" / "models" / "judge-arith-base"
#: Placeholders of the judge template (the constant passages lie between them).
_PLACEHOLDER = re.compile(r"\{(?:problem|reference|steps|solution|answer)\}")


@dataclass(frozen=True)
class JudgeBaseConfig:
    """Shape and tokenizer of the untrained judge (every field is recorded in the marker).

    Attributes:
        seed: seed of the weights.
        vocab_size: BPE vocabulary before the added passages (256 byte symbols, 3 ChatML specials, merges).
        tokenizer_texts: training conversations the merges are learned from.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: the transformer's shape
            (head size ``hidden_size / num_attention_heads`` = 32, which vLLM's CPU attention supports).
        max_position_embeddings: longest sequence (prompt + verdict) in tokens.
        prompt_version: the judge prompt whose passages become tokens.
    """

    seed: int = 0
    vocab_size: int = 768
    tokenizer_texts: int = 2000
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 1024
    prompt_version: str = "v1"


def template_passages(prompt_version: str) -> list[str]:
    """The judge template's constant passages: each section split at its placeholders, longest first."""
    from reward.judge.prompt import PromptTemplate

    template = PromptTemplate.load(prompt_version)
    passages = {piece for section in template.sections.values() if not section.startswith("=")
                for piece in _PLACEHOLDER.split(section) if piece.strip()}
    return sorted(passages, key=lambda piece: (-len(piece), piece))


def build_tokenizer(texts: list[str], config: JudgeBaseConfig) -> Any:
    """The judge tokenizer: the policy's BPE rule on ``texts`` plus the template passages as single tokens."""
    from data_prep.arith_policy import build_tokenizer as bpe_tokenizer

    tokenizer = bpe_tokenizer(texts, config.vocab_size)
    tokenizer.add_tokens(template_passages(config.prompt_version))
    return tokenizer


def new_model(tokenizer: Any, config: JudgeBaseConfig) -> Any:
    """A freshly initialised Qwen2-shaped causal LM (the policy's builder: tied embeddings, float32) seeded by
    ``config.seed``."""
    import torch

    from data_prep.arith_policy import new_policy_model

    torch.manual_seed(config.seed)
    return new_policy_model(tokenizer, config, max_position_embeddings=config.max_position_embeddings, architecture="qwen2")


def conversations(train_file: Path, limit: int) -> list[list[dict[str, str]]]:
    """The first ``limit`` conversations (``messages``) of a judge-example file."""
    import pyarrow.parquet as pq

    table = pq.read_table(train_file, columns=["messages"])
    return table.column("messages").to_pylist()[:limit]


def build_judge_base(train_file: Path, out_dir: Path = DEFAULT_DIR, config: JudgeBaseConfig | None = None) -> Path:
    """Build (or reuse) the untrained judge folder; returns it. Written to a temporary sibling, then renamed.

    Raises:
        ValueError: a training conversation is longer than ``max_position_embeddings`` tokens.
    """
    from data_prep.arith_policy import marker_matches, render_chatml
    from data_prep.staged_output import exclusive_build

    config = config or JudgeBaseConfig()
    out_dir = Path(out_dir)
    chats = conversations(Path(train_file), config.tokenizer_texts)
    texts = [render_chatml(chat[:1]) + chat[1]["content"] for chat in chats]
    # the merges depend on the texts: other examples (seed, sizes) make another tokenizer
    settings = {**asdict(config), "texts_sha256": hashlib.sha256("\0".join(texts).encode()).hexdigest()}
    if marker_matches(out_dir / DONE_MARKER, settings):
        return out_dir
    with exclusive_build(out_dir):
        if not marker_matches(out_dir / DONE_MARKER, settings):  # another process may have built it meanwhile
            _build(chats, texts, settings, out_dir, config, train_file)
    return out_dir


def _build(chats: list, texts: list[str], settings: dict, out_dir: Path, config: JudgeBaseConfig, train_file: Path) -> None:
    from data_prep.arith_policy import write_model_folder

    tokenizer = build_tokenizer(texts, config)
    longest = max(len(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False)) for chat in chats)
    if longest > config.max_position_embeddings:
        raise ValueError(f"a judge conversation of {train_file} takes {longest} tokens, more than "
                         f"max_position_embeddings={config.max_position_embeddings}")
    model = new_model(tokenizer, config)
    report = {"settings": settings, "parameters": sum(p.numel() for p in model.parameters()),
              "vocabulary": len(tokenizer), "longest_conversation_tokens": longest}
    write_model_folder(model, tokenizer, out_dir, DONE_MARKER, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.sgpo.judge_sft.base_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-file", type=Path, required=True, help="judge examples the tokenizer is learned from")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    print(build_judge_base(args.train_file, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
