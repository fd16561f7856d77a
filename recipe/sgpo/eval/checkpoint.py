"""What a model argument is, and a Hugging Face folder for it.

Accepted (checked in this order):

* a Hugging Face model folder: ``config.json`` and weights (``*.safetensors`` or ``*.bin``);
* a verl FSDP checkpoint: ``global_step_N/actor`` (``fsdp_config.json``, ``model_world_size_W_rank_R.pt``,
  ``huggingface/config.json``) or ``global_step_N`` itself (its ``actor`` is used). It is merged once with
  verl's own merger, ``python -m verl.model_merger merge --backend fsdp --local_dir <actor> --target_dir <dir>``,
  into ``<cache>/merged-<content key>``; a later evaluation of the same checkpoint reuses that folder;
* a hub id ``owner/name`` (optionally ``owner/name@revision``) that is not a local path.

Anything else stops with the reason and the fix, before any generation.

The content key of a folder is the sha256 over, for every file in name order: its relative path, its size
and the sha256 of its first and last CONTENT_SAMPLE_BYTES (a full hash of 60 GB of shards would take minutes
per evaluation; any retrained or re-saved checkpoint differs in these).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: Bytes hashed at each end of every file for the content key.
CONTENT_SAMPLE_BYTES = 1 << 20
#: Hex digits of the content key in a merged folder's name.
KEY_NAME_HEX = 16
#: Written last into a merged folder: its presence means the merge finished.
MERGED_MARKER = ".sgpo-merged.json"
#: A hub id: owner/name with an optional @revision.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
#: verl's step folder name.
STEP_FOLDER = re.compile(r"global_step_(\d+)")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


class NotAModelError(ValueError):
    """A model argument that is no model; the message says what was looked for and what to give instead."""


@dataclass(frozen=True)
class ModelSource:
    """A resolved model argument.

    Attributes:
        kind: ``hf_folder`` | ``fsdp`` | ``hub``.
        location: the folder (absolute) or the hub id without revision.
        revision: hub revision (None: the default branch) .
        step: the training step of an FSDP checkpoint (from ``global_step_N``), else None.
    """

    kind: str
    location: str
    revision: str | None = None
    step: int | None = None


def _has_weights(folder: Path) -> bool:
    return any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS)


def _is_fsdp_actor(folder: Path) -> bool:
    return (folder / "fsdp_config.json").is_file() and any(folder.glob("model_world_size_*_rank_*.pt"))


def detect(argument: str) -> ModelSource:
    """Classify a model argument (see the module docstring); raise :class:`NotAModelError` otherwise."""
    path = Path(argument).expanduser()
    if path.exists():
        folder = path.resolve()
        if folder.is_dir() and (folder / "actor").is_dir() and STEP_FOLDER.fullmatch(folder.name):
            folder = folder / "actor"
        step_match = next((STEP_FOLDER.fullmatch(part) for part in reversed(folder.parts) if STEP_FOLDER.fullmatch(part)), None)
        step = int(step_match.group(1)) if step_match else None
        if folder.is_dir() and _is_fsdp_actor(folder):
            if not (folder / "huggingface" / "config.json").is_file():
                raise NotAModelError(f"{folder}: a verl FSDP checkpoint without huggingface/config.json, which the merger needs; "
                                     "copy the base model's config and tokenizer into it (verl writes them when it saves)")
            return ModelSource("fsdp", str(folder), step=step)
        if folder.is_dir() and (folder / "config.json").is_file() and _has_weights(folder):
            return ModelSource("hf_folder", str(folder), step=step)
        raise NotAModelError(
            f"{folder} is not a model: no config.json with *.safetensors/*.bin weights (a Hugging Face folder) and no "
            "fsdp_config.json with model_world_size_*_rank_*.pt shards (verl's global_step_N/actor). Give one of those, or a hub id owner/name"
        )
    if HUB_ID.match(argument):
        name, _, revision = argument.partition("@")
        return ModelSource("hub", name, revision=revision or None)
    raise NotAModelError(f"{argument!r}: no such folder and not a hub id (owner/name[@revision]); check the path")


def content_key(folder: Path) -> str:
    """sha256 over every file's relative path, size and the hashes of its two ends (module docstring)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(folder)}\0{size}\0".encode())
        with file.open("rb") as handle:
            digest.update(hashlib.sha256(handle.read(CONTENT_SAMPLE_BYTES)).digest())
            if size > CONTENT_SAMPLE_BYTES:
                handle.seek(max(size - CONTENT_SAMPLE_BYTES, CONTENT_SAMPLE_BYTES))
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def merge_command(actor: Path, target: Path) -> list[str]:
    """verl's own merger for an FSDP actor folder."""
    return [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
            "--local_dir", str(actor), "--target_dir", str(target)]


def merged_folder(source: ModelSource, cache_dir: Path) -> tuple[Path, str]:
    """The Hugging Face folder of an FSDP checkpoint, merging it unless that checkpoint was merged before.

    Returns (folder, content key). The merge writes into ``<target>.partial`` and is renamed when complete,
    so an interrupted merge is redone, never used.
    """
    actor = Path(source.location)
    key = content_key(actor)
    target = Path(cache_dir) / f"merged-{key[:KEY_NAME_HEX]}"
    if (target / MERGED_MARKER).is_file():
        return target, key
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(merge_command(actor, partial), capture_output=True, text=True)
    if completed.returncode != 0 or not (partial / "config.json").is_file():
        raise RuntimeError(f"verl's model merger failed on {actor} (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    (partial / MERGED_MARKER).write_text(json.dumps({"checkpoint": str(actor), "content_key": key, "step": source.step}, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target, key


def context_length(config_source: str) -> int | None:
    """``max_position_embeddings`` of a model (a folder or a hub id), read exactly as the training preflight
    reads it (:func:`recipe.sgpo.preflight.model_context_positions`: its config.json, the Hugging Face
    cache, the launch scripts' hub ids; nothing is downloaded); None when unknown."""
    from omegaconf import OmegaConf

    from recipe.sgpo.preflight import model_context_positions

    positions, _ = model_context_positions(OmegaConf.create({"path": config_source}))
    return positions


def check_context(model_path: str, prompt_tokens: int, response_tokens: int) -> None:
    """Stop when prompt + response tokens exceed the model's context (responses would be cut at its end)."""
    limit = context_length(model_path)
    if limit is not None and prompt_tokens >= limit:
        raise ValueError(f"--max-prompt-tokens {prompt_tokens} leaves no room for a response in the context of {model_path} "
                         f"(max_position_embeddings {limit}); lower --max-prompt-tokens")
    if limit is not None and prompt_tokens + response_tokens > limit:
        raise ValueError(
            f"--max-prompt-tokens {prompt_tokens} + --max-response-tokens {response_tokens} = {prompt_tokens + response_tokens} "
            f"exceeds the context of {model_path} (max_position_embeddings {limit}); lower --max-response-tokens to "
            f"{limit - prompt_tokens} or less"
        )
