"""The on-disk layout of an offline set, and the checks a training launch relies on.

Layout of ``<set>`` (every file is written whole, through a temporary name, or appended line by line)::

    manifest.json          how the responses were made: model, tokenizer fingerprint, sampling, lengths,
                           group size, the source parquet and its sha256, rows, rows left out (overlong)
    prompts.parquet        the source rows to generate for, plus ``offline_row`` (0-based position in the
                           set) and ``agent_name`` = sgpo_record (the recording agent loop)
    generation/launch-<k>/ what the k-th generation launch recorded (records-<pid>.jsonl) and its trainer.log
    responses.arrow        every member of every complete group (:data:`RESPONSES_SCHEMA`)
    judge/protocol.json    the judge protocol: backend, model, prompt version and sha256, reward settings
    judge/results.jsonl    one line per graded group (appended as groups finish: an interrupted run resumes)
    judge/stats.json       per-set statistics (accuracy, all-negative share, judged, failures)
    members.arrow          responses plus encoded reward and reward extra info (:data:`MEMBERS_SCHEMA`):
                           what the ``sgpo_offline`` agent loop returns during training
    train.parquet          the rows to train on: source rows of graded groups, ``offline_row``, and
                           ``agent_name`` = sgpo_offline

Token ids are stored as generated (never re-tokenized), so the sequences trained on are exactly the
sequences sampled. ``.arrow`` files are Arrow IPC files, memory-mapped by every agent-loop worker of a
node: the operating system shares one copy of their pages.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa

MANIFEST_NAME = "manifest.json"
PROMPTS_NAME = "prompts.parquet"
GENERATION_DIR = "generation"
RESPONSES_NAME = "responses.arrow"
JUDGE_DIR = "judge"
JUDGE_PROTOCOL_NAME = "protocol.json"
JUDGE_RESULTS_NAME = "results.jsonl"
JUDGE_STATS_NAME = "stats.json"
MEMBERS_NAME = "members.arrow"
TRAIN_NAME = "train.parquet"

#: Column naming a row's position in the set (added to prompts.parquet and train.parquet).
ROW_COLUMN = "offline_row"
#: verl's per-row agent-loop column.
AGENT_COLUMN = "agent_name"
#: Agent loop that records what verl's rollout generated (generation launches).
RECORD_AGENT = "sgpo_record"
#: Agent loop that returns stored responses (training launches).
OFFLINE_AGENT = "sgpo_offline"
#: Version of this layout, written into every manifest; a different one is refused.
FORMAT_VERSION = 1

#: One row per group member, after generation.
RESPONSES_SCHEMA = pa.schema([
    (ROW_COLUMN, pa.int64()),
    ("member", pa.int32()),  # 0 … n−1: verl's session_id of the member in its group
    ("prompt_ids", pa.list_(pa.int32())),
    ("response_ids", pa.list_(pa.int32())),
    ("response_logprobs", pa.list_(pa.float32())),  # null when the rollout returned none
])
#: responses.arrow plus what the judge command adds.
MEMBERS_SCHEMA = pa.schema([
    *RESPONSES_SCHEMA,
    ("reward_score", pa.float64()),  # reward/encoding.py: 1 correct, c·g judged wrong, 0 wrong not judged
    ("reward_extra_info", pa.string()),  # JSON of reward/manager.py EXTRA_INFO_KEYS
])


class OfflineSetError(ValueError):
    """A stored set that cannot be used as asked; the message names the file and the fix."""


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 over the vocabulary (token → id), the special tokens and the chat template.

    Two tokenizers with the same fingerprint turn the same text into the same ids and back, so stored ids
    mean the same to the policy being trained as to the model that generated them.
    """
    payload = {
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special": sorted((str(k), str(v)) for k, v in (tokenizer.special_tokens_map or {}).items()),
        "chat_template": getattr(tokenizer, "chat_template", None),
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it replaces ``path`` only when the block succeeds
    (a reader never sees half a file, and a failed write leaves the old file and no temporary one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON, whole (:func:`replacing`)."""
    with replacing(path) as temporary:
        temporary.write_text(json.dumps(value, indent=1, sort_keys=True))


@contextmanager
def arrow_writer(path: Path, schema: pa.Schema) -> Iterator[Any]:
    """An Arrow IPC file writer of ``path``, written whole (:func:`replacing`)."""
    with replacing(path) as temporary, pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        yield writer


def write_arrow(path: Path, table: pa.Table) -> None:
    """Write an Arrow IPC file, whole."""
    with arrow_writer(path, table.schema) as writer:
        writer.write_table(table)


def read_arrow(path: Path) -> pa.Table:
    """A memory-mapped Arrow IPC file (zero-copy: pages are shared by every process that maps it)."""
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


def read_manifest(set_dir: Path) -> dict[str, Any]:
    """The set's manifest; a clear error when ``set_dir`` is not an offline set of this format."""
    path = Path(set_dir) / MANIFEST_NAME
    if not path.is_file():
        raise OfflineSetError(f"{path}: no such file; {set_dir} is not an offline set. Make one with "
                              "`python -m recipe.sgpo.offline generate --data <train.parquet> --out <set>`")
    manifest = json.loads(path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise OfflineSetError(f"{path}: format version {manifest.get('format_version')}, this code reads "
                              f"{FORMAT_VERSION}; generate the set again with this version")
    return manifest


@dataclass(frozen=True)
class StoredMember:
    """One stored response as training returns it."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_logprobs: list[float] | None
    reward_score: float
    reward_extra_info: dict[str, Any]


class MemberStore:
    """members.arrow of a judged set, indexed by (offline_row, member)."""

    def __init__(self, set_dir: Path) -> None:
        self.set_dir = Path(set_dir)
        self.manifest = read_manifest(self.set_dir)
        path = self.set_dir / MEMBERS_NAME
        if not path.is_file():
            raise OfflineSetError(f"{path}: no such file; the set has no judge results. Run "
                                  f"`python -m recipe.sgpo.offline judge --set {self.set_dir}` first")
        self.table = read_arrow(path)
        rows = self.table.column(ROW_COLUMN).to_pylist()
        members = self.table.column("member").to_pylist()
        self._index = {(row, member): position for position, (row, member) in enumerate(zip(rows, members))}

    @property
    def group_size(self) -> int:
        return int(self.manifest["n"])

    def get(self, row: int, member: int) -> StoredMember:
        """The stored response of ``member`` (0 … n−1) of row ``row``; a clear error when it is not stored."""
        position = self._index.get((int(row), int(member)))
        if position is None:
            raise OfflineSetError(
                f"{self.set_dir / MEMBERS_NAME}: no stored response for {ROW_COLUMN}={row}, member={member} (the set "
                f"has n={self.group_size} per prompt); train with actor_rollout_ref.rollout.n={self.group_size} on the "
                f"set's own {TRAIN_NAME}")
        record = self.table.slice(position, 1).to_pylist()[0]
        return StoredMember(
            prompt_ids=record["prompt_ids"],
            response_ids=record["response_ids"],
            response_logprobs=record["response_logprobs"],
            reward_score=float(record["reward_score"]),
            reward_extra_info=json.loads(record["reward_extra_info"]),
        )


_STORES: dict[str, MemberStore] = {}


def member_store(set_dir: str | Path) -> MemberStore:
    """The process's one :class:`MemberStore` of ``set_dir`` (opened on first use)."""
    key = str(Path(set_dir).resolve())
    if key not in _STORES:
        _STORES[key] = MemberStore(Path(key))
    return _STORES[key]


def training_problems(set_dir: Path, *, group_size: int, tokenizer: Any | None, prompt_length: int | None,
                      response_length: int | None, train_files: Iterable[str] | None = None) -> list[str]:
    """What would make a training launch on ``set_dir`` wrong, each naming the file and the fix ([] = none).

    Checked: the set exists and has judge results; its group size equals ``actor_rollout_ref.rollout.n``;
    its tokenizer fingerprint equals the policy's; every stored prompt and response fits the trainer's
    lengths; ``data.train_files`` is the set's own train.parquet.
    """
    set_dir = Path(set_dir)
    try:
        manifest = read_manifest(set_dir)
    except OfflineSetError as error:
        return [str(error)]
    problems = []
    manifest_path = set_dir / MANIFEST_NAME
    if not (set_dir / MEMBERS_NAME).is_file() or not (set_dir / TRAIN_NAME).is_file():
        problems.append(f"{set_dir / MEMBERS_NAME}: missing; the set has no judge results. Run "
                        f"`python -m recipe.sgpo.offline judge --set {set_dir}`")
    if int(manifest["n"]) != int(group_size):
        problems.append(f"{manifest_path}: the set has n={manifest['n']} responses per prompt but "
                        f"actor_rollout_ref.rollout.n={group_size}; set actor_rollout_ref.rollout.n={manifest['n']} "
                        "(or generate a set with the group size you want)")
    if tokenizer is not None and tokenizer_fingerprint(tokenizer) != manifest["tokenizer_fingerprint"]:
        problems.append(f"{manifest_path}: the stored token ids were made with the tokenizer of {manifest['model']!r}, "
                        "which differs from the policy's (vocabulary, special tokens or chat template); train a policy "
                        "with that tokenizer, or generate the set again with this policy")
    lengths = manifest.get("lengths") or {}
    if prompt_length is not None and lengths.get("max_prompt_ids", 0) > int(prompt_length):
        problems.append(f"{manifest_path}: a stored prompt has {lengths['max_prompt_ids']} tokens, more than "
                        f"data.max_prompt_length={prompt_length}; raise it to at least {lengths['max_prompt_ids']}")
    if response_length is not None and lengths.get("max_response_ids", 0) > int(response_length):
        problems.append(f"{manifest_path}: a stored response has {lengths['max_response_ids']} tokens, more than "
                        f"data.max_response_length={response_length}; raise it to at least {lengths['max_response_ids']}")
    if train_files is not None:
        expected = (set_dir / TRAIN_NAME).resolve()
        given = [Path(str(f)).resolve() for f in train_files]
        if given != [expected]:
            problems.append(f"data.train_files={[str(f) for f in train_files]}: an offline run trains on the set's own "
                            f"rows; set data.train_files=[{expected}]")
    return problems
