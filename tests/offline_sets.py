"""Offline sets built from written responses (tests/test_offline_on_cpu.py, tests/test_judge_server_on_cpu.py):
the real prepare / finish of recipe/sgpo/offline/generate.py, with records written as the sgpo_record agent loop
writes them, so judging and training can be tested without a generation launch."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from recipe.sgpo.offline import store
from recipe.sgpo.offline.generate import GenerationSettings, finish, prepare

#: Group size and response-token limit of the sets built here.
N = 4
RESPONSE_LENGTH = 128


def write_source(folder: Path, rows: list[dict]) -> Path:
    import pyarrow as pa

    from data_prep.schema import ROW_SCHEMA

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ROW_SCHEMA), path)
    return path


def settings_for(policy: Path, n: int = N) -> GenerationSettings:
    return GenerationSettings(model=str(policy), n=n, temperature=1.0, top_p=1.0, top_k=-1, seed=0,
                              max_prompt_length=256, max_response_length=RESPONSE_LENGTH)


def solution_with_error(row: dict, wrong_step: int | None) -> str:
    """The reference solution; with ``wrong_step`` (1-based) that line's result off by one and a wrong boxed answer."""
    lines = row["extra_info"]["reference_solution"].splitlines()
    answer = int(row["reward_model"]["ground_truth"])
    if wrong_step is not None:
        left, value = lines[wrong_step - 1].rsplit("= ", 1)
        lines[wrong_step - 1] = f"{left}= {int(value) + 1}"
        answer += 1
    return "\n".join(lines) + f"\n\\boxed{{{answer}}}"


def make_set(folder: Path, policy: Path, tokenizer, rows: list[dict], texts: list[list[str]], launch: int = 0) -> Path:
    """A generated set whose members are ``texts`` (one list of n per row), through the real prepare/finish."""
    source = write_source(folder / "source", rows)
    set_dir = folder / "set"
    manifest = prepare(set_dir, source, settings_for(policy, n=len(texts[0])), "cpu")
    records = set_dir / store.GENERATION_DIR / f"launch-{launch}"
    records.mkdir(parents=True, exist_ok=True)
    with (records / "records-test.jsonl").open("w") as handle:
        for row, (source_row, group) in enumerate(zip(rows, texts)):
            prompt_ids = tokenizer.apply_chat_template(source_row["prompt"], add_generation_prompt=True, tokenize=True)
            prompt_ids = list(prompt_ids["input_ids"] if hasattr(prompt_ids, "keys") else prompt_ids)
            for member, text in enumerate(group):
                handle.write(json.dumps({store.ROW_COLUMN: row, "member": member, "prompt_ids": prompt_ids,
                                         "response_ids": tokenizer.encode(text, add_special_tokens=False),
                                         "response_logprobs": [-0.5] * len(tokenizer.encode(text, add_special_tokens=False))}) + "\n")
    finish(set_dir, manifest)
    return set_dir
