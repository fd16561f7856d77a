"""Fit judge examples to the SFT trainer's ``data.max_length``: rows whose prompt and verdict take more tokens
are dropped and counted, so that verl's trainer (``data.truncation=error``) never meets one and nothing is
cut silently (a cut prompt or a cut verdict would teach the judge nothing, or the wrong thing).

Tokens are counted as the trainer's ``MultiTurnSFTDataset`` sees them: the model's own tokenizer and chat
template over the whole conversation, plus :data:`MARGIN_TOKENS` for the per-turn tokenization the
dataset does (its ids can differ from the whole-conversation rendering by a token or two at turn
boundaries).

CLI::

    python -m recipe.sgpo.judge_sft.fit --model MODEL_DIR --max-length 4096 --out DIR data/judge_prm800k/train.parquet ...

prints one line per file and writes ``DIR/<dataset>-<split>.parquet`` with ``DIR/fit_report.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

#: Tokens kept free below ``max_length`` (see the module docstring).
MARGIN_TOKENS = 8


def token_length(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Tokens of one conversation rendered with the tokenizer's chat template (no generation prompt)."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=False, return_dict=False)
    return len(ids)


def measure_file(path: Path, tokenizer: Any, max_length: int, out_dir: Path, *,
                 progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """The rows of ``path`` that fit ``max_length - MARGIN_TOKENS`` tokens, and the report of where they go.

    Raises:
        ValueError: the file has no ``messages`` column (not a judge-example file), or no row fits.
    """
    from tqdm import tqdm

    table = pq.read_table(path)
    if "messages" not in table.column_names:
        raise ValueError(f"{path} has no 'messages' column: write judge examples with `python -m data_prep write judge_...`")
    limit = max_length - MARGIN_TOKENS
    lengths = [token_length(tokenizer, messages) for messages in
               tqdm(table.column("messages").to_pylist(), desc=f"fitting {path.name}", disable=not progress)]
    keep = [i for i, length in enumerate(lengths) if length <= limit]
    if not keep:
        raise ValueError(f"{path}: no row fits {limit} tokens (longest {max(lengths)}); raise data.max_length")
    dataset = table.column("dataset")[0].as_py() if table.num_rows else path.parent.name
    split = table.column("split")[0].as_py() if table.num_rows else path.stem
    target = out_dir / f"{dataset}-{split}.parquet"
    report = {"input": str(path), "output": str(target), "rows": table.num_rows, "kept": len(keep),
              "dropped_too_long": table.num_rows - len(keep), "max_length": max_length, "limit": limit,
              "longest_kept": max(lengths[i] for i in keep), "longest": max(lengths)}
    return table.take(keep), report


def fit_file(path: Path, tokenizer: Any, max_length: int, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Write the rows of ``path`` that fit (:func:`measure_file`) to ``out_dir``; return the counts."""
    return fit_files_with(tokenizer, [path], max_length, out_dir, progress=progress)[0]


def fit_files_with(tokenizer: Any, paths: list[Path], max_length: int, out_dir: Path, *,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Measure every file first, then write them all: a file that fails leaves nothing written."""
    measured = [measure_file(Path(path), tokenizer, max_length, out_dir, progress=progress) for path in paths]
    out_dir.mkdir(parents=True, exist_ok=True)
    for table, report in measured:
        pq.write_table(table, report["output"])
    return [report for _, report in measured]


def fit_files(paths: list[Path], model_dir: Path, max_length: int, out_dir: Path, *,
              progress: bool = True) -> list[dict[str, Any]]:
    """:func:`fit_files_with` the tokenizer of ``model_dir``; writes ``out_dir/fit_report.json``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.chat_template is None:
        raise ValueError(f"{model_dir}: the tokenizer has no chat template; the judge is trained on chat turns")
    report = fit_files_with(tokenizer, paths, max_length, out_dir, progress=progress)
    (out_dir / "fit_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.sgpo.judge_sft.fit", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="judge-example parquet files (data/<name>/<split>.parquet)")
    parser.add_argument("--model", type=Path, required=True, help="the model folder whose tokenizer counts tokens")
    parser.add_argument("--max-length", type=int, required=True, help="the trainer's data.max_length")
    parser.add_argument("--out", type=Path, required=True, help="folder of the fitted files")
    args = parser.parse_args(argv)
    try:
        report = fit_files(args.files, args.model, args.max_length, args.out)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for entry in report:
        print(f"{entry['output']}: {entry['kept']} of {entry['rows']} rows fit {entry['limit']} tokens "
              f"({entry['dropped_too_long']} dropped as too long; longest kept {entry['longest_kept']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
