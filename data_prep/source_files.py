"""Checks of local source files before ``datasets`` reads them, so that a broken file stops the run with the
dataset, the file, the row and the fix instead of an error from deep inside ``datasets`` or ``pyarrow``.

Every local data file (``.json``, ``.jsonl``, ``.parquet``) of a dataset is checked:

* **empty** — a file with no bytes, or no rows, is refused (an empty split is never what was meant).
* **JSON / JSON Lines** (read here as ``datasets``' json builder reads them: a file whose first character is
  ``[`` is one JSON array of row objects, any other file is JSON Lines, one row object per non-blank line)
  must be valid UTF-8 and valid JSON, every row a JSON object, and every column the conversion reads must
  have **one JSON type in every row** (``null`` allowed anywhere; integers and floats count as one type,
  numbers). ``datasets`` does not refuse a mixed column: it stores it as its ``Json`` feature and decodes
  the string ``"1"`` as the number ``1``, so the row that is reported bad would be the wrong one. The check
  descends into lists (``column[]``) and objects (``column.key``).
* **parquet** must have a readable footer (not truncated or another format), and the text of the columns
  the conversion reads must be valid UTF-8 (parquet writers do not always check; ``pyarrow`` reads the bytes
  as they are and only fails when a row is turned into Python).

Rows and lines are counted from 1 (``row 3`` is the file's third row), as an editor shows them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

#: Suffixes read as JSON (an array of objects, or JSON Lines) and as parquet.
JSON_SUFFIXES = frozenset({".json", ".jsonl"})
PARQUET_SUFFIX = ".parquet"

#: Byte order mark that ``datasets`` tolerates at the start of a JSON file (so we do too).
UTF8_BOM = b"\xef\xbb\xbf"

#: Bytes read at a time from the start of a JSON file to tell an array (``[``) from JSON Lines, or blank.
JSON_PEEK_BYTES = 1 << 16

#: Rows of a parquet file checked at a time for valid UTF-8.
PARQUET_CHECK_BATCH_ROWS = 8192


class SourceFileError(ValueError):
    """A local source file that cannot be read as it stands.

    Attributes:
        dataset: Registry name of the dataset.
        path: The file.
        row: The file's row (counted from 1) that is bad, or ``None`` when the whole file is.
        problem: What is wrong, in words (with the line and field where known).
        fix: What to do about it.
    """

    def __init__(self, dataset: str, path: Path, row: int | None, problem: str, fix: str):
        self.dataset, self.path, self.row, self.problem, self.fix = dataset, path, row, problem, fix
        where = f", row {row}" if row is not None else ""
        super().__init__(f"dataset {dataset!r}, file {path}{where}: {problem}\nFix: {fix}")


def refetch_fix(hf_id: str | None) -> str:
    """The fix for a file that is damaged as a whole (truncated, wrong format, empty)."""
    hub_id = hf_id or "<id>"
    return (
        f"fetch the file again (`hf download {hub_id} --repo-type dataset --local-dir <DIR>/{hub_id}`) or remove "
        "it from the folder; a local file must be the hub's own file"
    )


def check_source_files(dataset: str, files: list[Path], columns: tuple[str, ...], *, hf_id: str | None) -> None:
    """Raise :class:`SourceFileError` for the first bad file among ``files`` (see the module docstring).

    Args:
        dataset: Registry name, for the message.
        files: The local data files ``datasets`` will read.
        columns: Top-level columns the conversion reads (only these are type-checked).
        hf_id: The dataset's hub id, for the fix (fetch the file again).
    """
    for path in files:
        try:
            if path.suffix in JSON_SUFFIXES:
                _check_json_file(dataset, path, columns, hf_id)
            elif path.suffix == PARQUET_SUFFIX:
                _check_parquet_file(dataset, path, columns, hf_id)
        except OSError as error:
            raise SourceFileError(
                dataset, path, None, f"cannot be read: {error.strerror or error}", "make the file readable"
            ) from None


# --------------------------------------------------------------------------------------------------
# JSON and JSON Lines
# --------------------------------------------------------------------------------------------------


def _check_json_file(dataset: str, path: Path, columns: tuple[str, ...], hf_id: str | None) -> None:
    with open(path, "rb") as handle:
        first = _first_nonblank_byte(handle)
        if first is None:
            raise SourceFileError(dataset, path, None, "the file is empty (no rows)", refetch_fix(hf_id))
        if first == b"[":
            text = _decode_utf8(dataset, path, handle.read(), row=None)
            rows = _json_array_rows(dataset, path, text.removeprefix(UTF8_BOM.decode()))
        else:
            rows = _json_lines_rows(dataset, path, handle)
        if not _check_one_type_per_column(dataset, path, rows, columns):
            raise SourceFileError(dataset, path, None, "the file holds no rows", refetch_fix(hf_id))


def _first_nonblank_byte(handle: BinaryIO) -> bytes | None:
    """The first byte after the BOM and whitespace (``None``: the file is blank); rewinds ``handle``."""
    chunk = handle.read(JSON_PEEK_BYTES).removeprefix(UTF8_BOM)
    while chunk and not chunk.strip():
        chunk = handle.read(JSON_PEEK_BYTES)
    handle.seek(0)
    stripped = chunk.lstrip()
    return stripped[:1] if stripped else None


def _decode_utf8(dataset: str, path: Path, data: bytes, *, row: int | None, line: int = 1, offset: int = 0) -> str:
    """``data`` (which starts at ``line`` and byte ``offset`` of the file) as text, or a bad-row error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line += data.count(b"\n", 0, error.start)
        position = offset + error.start
        raise SourceFileError(
            dataset,
            path,
            row,
            f"line {line}: byte {position} (0x{data[error.start]:02x}) is not valid UTF-8 ({error.reason})",
            "re-encode the file as UTF-8 (for example `iconv -f <its encoding> -t UTF-8`) or fetch it again",
        ) from None


def _json_lines_rows(dataset: str, path: Path, handle: BinaryIO) -> Iterator[tuple[int, str, Any]]:
    """``(row, where, value)`` per non-blank line, read one at a time; ``where`` names the line."""
    row, offset = 0, 0
    for line_number, raw in enumerate(handle, start=1):
        line_offset, offset = offset, offset + len(raw)
        if line_number == 1:
            raw = raw.removeprefix(UTF8_BOM)
        if not raw.strip():
            continue
        row += 1
        line = _decode_utf8(dataset, path, raw, row=row, line=line_number, offset=line_offset)
        where = f"line {line_number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise SourceFileError(
                dataset, path, row, f"{where} is not valid JSON ({error.msg}, column {error.colno})", _json_fix(path)
            ) from None
        yield row, where, value


def _json_array_rows(dataset: str, path: Path, text: str) -> list[tuple[int, str, Any]]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        problem = f"line {error.lineno} is not valid JSON ({error.msg}, column {error.colno})"
        raise SourceFileError(dataset, path, None, problem, _json_fix(path)) from None
    if not isinstance(values, list):
        raise SourceFileError(dataset, path, None, "is not a JSON array of rows", _json_fix(path))
    return [(row, f"array item {row}", value) for row, value in enumerate(values, start=1)]


def _json_fix(path: Path) -> str:
    layout = "one JSON object per line" if path.suffix == ".jsonl" else "a JSON array of objects, or JSON Lines"
    return f"repair the file ({layout}) or fetch it again"


def _json_type(value: Any) -> str | None:
    """The JSON type of ``value`` in words; ``None`` for null (allowed in any column)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _check_one_type_per_column(
    dataset: str, path: Path, rows: Iterable[tuple[int, str, Any]], columns: tuple[str, ...]
) -> int:
    """Check every row object and the JSON types of ``columns``; returns the number of rows."""
    first_seen: dict[str, tuple[str, int, Any]] = {}  # field path -> (type, row, value) of its first non-null
    count = 0
    for row, where, value in rows:
        count += 1
        if not isinstance(value, dict):
            raise SourceFileError(
                dataset, path, row, f"{where} is {_json_type(value) or 'null'}, not a row object", _json_fix(path)
            )
        for column in columns:
            _check_value(dataset, path, row, column, value.get(column), first_seen)
    return count


def _check_value(
    dataset: str, path: Path, row: int, field: str, value: Any, first_seen: dict[str, tuple[str, int, Any]]
) -> None:
    kind = _json_type(value)
    if kind is None:
        return
    seen = first_seen.setdefault(field, (kind, row, value))
    if seen[0] != kind:
        raise SourceFileError(
            dataset,
            path,
            row,
            f"field {field!r} is {kind} ({value!r:.80}) but row {seen[1]} holds {seen[0]} there ({seen[2]!r:.80}); "
            "`datasets` would silently re-type a mixed column (the string \"1\" becomes the number 1)",
            f"give {field!r} one JSON type in every row (for example quote numbers as strings, or write every "
            f"value as a list)",
        )
    if isinstance(value, list):
        for item in value:
            _check_value(dataset, path, row, f"{field}[]", item, first_seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(dataset, path, row, f"{field}.{key}", item, first_seen)


# --------------------------------------------------------------------------------------------------
# parquet
# --------------------------------------------------------------------------------------------------


def _check_parquet_file(dataset: str, path: Path, columns: tuple[str, ...], hf_id: str | None) -> None:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowIOError) as error:
        raise SourceFileError(
            dataset, path, None, f"is not a readable parquet file, no row can be read ({error})", refetch_fix(hf_id)
        ) from None
    if parquet.metadata.num_rows == 0:
        raise SourceFileError(dataset, path, None, "the file holds no rows", refetch_fix(hf_id))
    present = [c for c in columns if c in parquet.schema_arrow.names]  # missing ones are reported after loading
    first_row = 1
    for batch in parquet.iter_batches(batch_size=PARQUET_CHECK_BATCH_ROWS, columns=present):
        try:
            batch.validate(full=True)
        except pa.ArrowInvalid:
            row = first_row + _first_invalid_row(batch)
            raise SourceFileError(
                dataset,
                path,
                row,
                "its text is not valid UTF-8",
                "rewrite the file with UTF-8 text (or fetch it again)",
            ) from None
        first_row += batch.num_rows


def _first_invalid_row(batch: pa.RecordBatch) -> int:
    """Offset (from 0) of the first row of ``batch`` that fails Arrow's full validation (UTF-8 included)."""
    for offset in range(batch.num_rows):
        try:
            batch.slice(offset, 1).validate(full=True)
        except pa.ArrowInvalid:
            return offset
    return 0
