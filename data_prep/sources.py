"""Where a dataset's rows come from: the Hugging Face hub when online, local files when not — the same
``datasets.load_dataset`` call either way.

Local copies are in the hub's own formats (parquet, json, jsonl), laid out as on the hub:

* ``--source-dir DIR`` looks for ``DIR/<owner>/<name>/`` (for example ``DIR/HuggingFaceH4/MATH-500``),
  which is what ``hf download <id> --repo-type dataset --local-dir DIR/<id>`` produces. The folder is
  read with ``datasets.load_dataset(folder, ...)``, which resolves splits and configs exactly as it does
  on the hub (the snapshot's README configs, or file names such as ``test.jsonl`` and
  ``data/train-00000-of-00001.parquet``).
* ``--source NAME=PATH`` points one dataset at a folder as above, or at a single file (read as its one
  split).

A dataset with no local copy is read from the hub (``datasets`` shows download progress bars). When the
hub is unreachable the error names the dataset and the command that fetches it.

Local files are hashed (sha256) once, before they are read; those hashes are what the manifest records, and
they also name the ``datasets`` cache the files are read through (``<cache>/data_prep_local/<digest>/``).
``datasets`` itself recognises a local file only by path and modification time, so an edit that keeps the
size and restores the mtime would otherwise be served from its stale cache while the manifest recorded
the new file's hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: File suffixes ``datasets`` reads for us, and the builder that reads each.
LOCAL_FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json"}

#: Where ``hf download --local-dir`` records, per file, the commit it was downloaded from.
HF_DOWNLOAD_METADATA_DIR = Path(".cache") / "huggingface" / "download"

#: Bytes read at a time when hashing input files.
HASH_CHUNK_BYTES = 1 << 20

#: Folder, under the ``datasets`` cache, of the caches of local sources (one per content digest).
LOCAL_CACHE_FOLDER = "data_prep_local"


class SourceUnavailableError(RuntimeError):
    """A dataset could not be read from the hub or from local files; the message says how to fix it."""


@dataclass(frozen=True)
class SourceLocation:
    """How one dataset is read.

    Attributes:
        origin: ``hub``, ``local_dir`` or ``local_file``.
        path: The hub id, or the local folder/file.
        config: The hub config (subset) name, if any.
        revision: Hub revision asked for (``None``: the default branch).
        missing_local_copy: For a hub read, the local folder that was looked for and not found (named in
            the error when the hub is unreachable too).
        data_files: For a hub or folder read, the files of each split (``{split: file}``, relative to the
            dataset's root) when the dataset's own split layout cannot be read as a whole; ``None`` reads
            the layout as ``datasets`` resolves it.
    """

    origin: str
    path: str
    config: str | None = None
    revision: str | None = None
    missing_local_copy: str | None = None
    data_files: dict[str, str] | None = None


def locate(
    name: str,
    hf_id: str,
    config: str | None,
    *,
    source_dir: Path | None,
    overrides: dict[str, Path],
    revision: str | None = None,
    data_files: dict[str, str] | None = None,
) -> SourceLocation:
    """Decide where dataset ``name`` (hub id ``hf_id``) is read from; see the module docstring.

    ``data_files`` (``{split: file}``) applies to the hub and to folders, not to a single ``--source`` file.
    """
    files = dict(data_files) if data_files else None
    if name in overrides:
        path = Path(overrides[name])
        if path.is_dir():
            return SourceLocation("local_dir", str(path), config, data_files=files)
        if path.is_file():
            if path.suffix not in LOCAL_FORMATS:
                raise SourceUnavailableError(
                    f"--source {name}={path}: unsupported file type {path.suffix!r}; "
                    f"give a {', '.join(LOCAL_FORMATS)} file or a folder in the hub's layout"
                )
            return SourceLocation("local_file", str(path), config)
        raise SourceUnavailableError(f"--source {name}={path}: no such file or folder")
    if source_dir is not None:
        local = Path(source_dir) / hf_id
        if local.is_dir():
            return SourceLocation("local_dir", str(local), config, data_files=files)
        return SourceLocation("hub", hf_id, config, revision, missing_local_copy=str(local), data_files=files)
    return SourceLocation("hub", hf_id, config, revision, data_files=files)


def load_split(
    location: SourceLocation,
    split: str,
    *,
    name: str,
    cache_dir: str | None = None,
    show_progress: bool = True,
    input_hashes: dict[str, str] | None = None,
) -> Any:
    """Load one split as a ``datasets.Dataset`` (memory-mapped Arrow, not Python objects).

    ``show_progress=False`` silences ``datasets``' own download/preparation bars for this call.
    ``input_hashes`` (from :func:`input_file_hashes`) are required for a local source: they choose the cache
    it is read through (see the module docstring).
    """
    import datasets

    if location.origin != "hub":
        if input_hashes is None:
            raise ValueError(f"load_split({location.path}): a local source needs its input_hashes")
        base = Path(cache_dir) if cache_dir is not None else Path(datasets.config.HF_DATASETS_CACHE)
        cache_dir = str(base / LOCAL_CACHE_FOLDER / content_digest(input_hashes))
    bars_were_enabled = not datasets.utils.are_progress_bars_disabled()
    if not show_progress:
        datasets.disable_progress_bars()
    try:
        return _load(datasets, location, split, cache_dir)
    except Exception as error:  # datasets raises many types (offline, not found, connection, bad split)
        raise SourceUnavailableError(_unavailable_message(location, split, name, error)) from error
    finally:
        if bars_were_enabled:
            datasets.enable_progress_bars()


def _load(datasets: Any, location: SourceLocation, split: str, cache_dir: str | None) -> Any:
    if location.origin == "local_file":
        builder = LOCAL_FORMATS[Path(location.path).suffix]
        return datasets.load_dataset(builder, data_files=location.path, split="train", cache_dir=cache_dir)
    return datasets.load_dataset(
        location.path, name=location.config, split=split, revision=location.revision, cache_dir=cache_dir,
        data_files=location.data_files,
    )


def _unavailable_message(location: SourceLocation, split: str, name: str, error: Exception) -> str:
    if location.origin == "hub":
        searched = f" (no local copy at {location.missing_local_copy})" if location.missing_local_copy else ""
        return (
            f"could not read dataset {name!r} ({location.path}, split {split!r}) from the Hugging Face hub"
            f"{searched}: {type(error).__name__}: {error}\n"
            f"Fix: where the hub is reachable run `hf download {location.path} --repo-type dataset "
            f"--local-dir <DIR>/{location.path}`, copy <DIR> here and pass `--source-dir <DIR>` "
            f"(or `--source {name}=<path>`)."
        )
    return (
        f"could not read dataset {name!r} split {split!r} from local {location.path}: "
        f"{type(error).__name__}: {error}\n"
        f"Fix: the folder must hold the hub's files for {name} (parquet/json/jsonl as on the hub), "
        f"or pass `--source {name}=<file>` for a single file."
    )


def local_data_files(location: SourceLocation) -> list[Path]:
    """The data files of a local source, sorted (``[]`` for the hub); hidden folders such as ``.cache``
    are not data."""
    if location.origin == "hub":
        return []
    if location.origin == "local_dir" and location.data_files:
        return sorted(Path(location.path) / file for file in location.data_files.values())
    return _local_data_files(Path(location.path))


def input_file_hashes(location: SourceLocation) -> dict[str, str]:
    """sha256 (hex) of each local data file, keyed by its path relative to the source (``{}`` for the hub)."""
    root = Path(location.path) if location.origin == "local_dir" else Path(location.path).parent
    return {str(f.relative_to(root)): sha256_of(f) for f in local_data_files(location)}


def content_digest(input_hashes: dict[str, str]) -> str:
    """One sha256 (hex) over the sorted ``(relative path, file sha256)`` pairs: the identity of a local source."""
    digest = hashlib.sha256()
    for relative, file_hash in sorted(input_hashes.items()):
        digest.update(f"{relative}\0{file_hash}\n".encode())
    return digest.hexdigest()


def provenance(location: SourceLocation, input_hashes: dict[str, str] | None = None) -> dict[str, Any]:
    """What the manifest records about the source: origin, path, revision when known, input hashes.

    ``input_hashes`` are those the files were read under (:func:`input_file_hashes`, computed now if not
    given).
    """
    record: dict[str, Any] = {"origin": location.origin, "path": location.path, "config": location.config}
    if location.origin == "hub":
        record["revision"] = location.revision or _hub_revision(location.path)
        return record
    record["revision"] = _snapshot_revision(Path(location.path)) if location.origin == "local_dir" else None
    record["files_sha256"] = input_hashes if input_hashes is not None else input_file_hashes(location)
    return record


def _hub_revision(hf_id: str) -> str | None:
    """The commit the hub serves for ``hf_id`` now, or ``None`` when the hub cannot be asked."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(hf_id).sha
    except Exception:  # offline, rate-limited, or gated: the revision is then simply unknown
        return None


def _snapshot_revision(folder: Path) -> str | None:
    """The commit an ``hf download --local-dir`` snapshot came from (``None`` if unknown or mixed)."""
    metadata_dir = folder / HF_DOWNLOAD_METADATA_DIR
    commits = (
        {
            path.read_text().splitlines()[0].strip()
            for path in sorted(metadata_dir.rglob("*.metadata"))
            if path.is_file() and path.read_text().strip()
        }
        if metadata_dir.is_dir()
        else set()
    )
    return commits.pop() if len(commits) == 1 else None


def _local_data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        f
        for f in path.rglob("*")
        if f.is_file()
        and f.suffix in LOCAL_FORMATS
        and not any(part.startswith(".") for part in f.relative_to(path).parts)
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
