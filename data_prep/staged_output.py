"""All-or-nothing output: every file of a run is first written under a staging folder inside the output root
(``<output_dir>/.data_prep-staging-<random>/``, the same file system, so moving is a rename), and moved
into place only once all of them were written. Files already in place that a move replaces are kept aside
until every move succeeded, so a failure at any point — writing a file, creating a folder, a move — puts
back what was there, removes what this run created (the staging folder, new folders, the output root if
the run created it) and leaves no temporary file behind.

Usage::

    with StagedOutput(output_dir, run="math500, aime25") as output:
        write(output.stage(output_dir / "aime25" / "test.parquet", owner="aime25"))
        ...
        output.commit()      # without it, nothing is moved into place
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

#: Name prefix of the staging folder inside the output root (hidden: not a dataset folder).
STAGING_PREFIX = ".data_prep-staging-"

#: Sub-folder of the staging folder holding the files a commit replaces, until the commit is complete.
BACKUP_FOLDER = "replaced"


class OutputWriteError(RuntimeError):
    """A file of the run could not be written or moved into place; nothing of the run was kept.

    Attributes:
        owner: The dataset (or datasets) the file belongs to.
        path: The file or folder that failed.
    """

    def __init__(self, owner: str, path: Path, error: OSError):
        self.owner, self.path = owner, path
        reason = error.strerror or str(error)
        super().__init__(
            f"dataset {owner!r}: could not write {path}: {reason}\n"
            f"Fix: make {path.parent} a writable folder with free space (and {path.name} not a folder), "
            "or pass --out another folder; the output root is as it was before this run."
        )


class StagedOutput:
    """Stage a run's files, then move them all into place, or none of them (see the module docstring)."""

    def __init__(self, output_dir: Path, *, run: str):
        """``run`` names the run's datasets, for errors that belong to no single file (the output root)."""
        self.output_dir = Path(output_dir)
        self.run = run
        self._moves: list[tuple[Path, Path, str]] = []  # (staged, target, owner)
        self._created_dirs: list[Path] = []
        self._staging: Path | None = None

    def __enter__(self) -> StagedOutput:
        try:
            self._make_dirs(self.output_dir)
            self._staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.output_dir))
        except OSError as error:
            self._remove_created_dirs()
            raise OutputWriteError(self.run, Path(error.filename or self.output_dir), error) from None
        return self

    def stage(self, target: Path, *, owner: str) -> Path:
        """Where to write the file that will become ``target`` (its folder exists); ``owner`` names its dataset."""
        assert self._staging is not None, "stage() outside the with block"
        staged = self._staging / Path(target).relative_to(self.output_dir)
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputWriteError(owner, staged.parent, error) from None
        self._moves.append((staged, Path(target), owner))
        return staged

    def commit(self) -> None:
        """Move every staged file into place; on any failure undo the moves already made, then raise."""
        assert self._staging is not None, "commit() outside the with block"
        backups = self._staging / BACKUP_FOLDER
        done: list[tuple[Path, Path | None]] = []  # (target, where the file it replaced was kept)
        for number, (staged, target, owner) in enumerate(self._moves):
            try:
                self._make_dirs(target.parent)
                done.append((target, self._keep_aside(target, backups / str(number))))
                os.replace(staged, target)
            except OSError as error:
                self._undo(done)
                raise OutputWriteError(owner, target, error) from None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        if error is not None:
            self._remove_created_dirs()

    # ----------------------------------------------------------------------------------------------

    def _make_dirs(self, folder: Path) -> None:
        """``mkdir -p folder``, remembering each folder created (removed again if the run fails)."""
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir()
            self._created_dirs.append(path)

    @staticmethod
    def _keep_aside(target: Path, backup: Path) -> Path | None:
        if target.is_dir() and not target.is_symlink():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way of the file", str(target))
        if not target.exists():
            return None
        backup.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target, backup)
        return backup

    def _undo(self, done: list[tuple[Path, Path | None]]) -> None:
        for target, backup in reversed(done):
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)

    def _remove_created_dirs(self) -> None:
        for folder in reversed(self._created_dirs):
            try:
                folder.rmdir()
            except OSError:  # not empty: something else lives there now; leave it
                pass
        self._created_dirs.clear()


@contextmanager
def exclusive_build(target: Path) -> Iterator[None]:
    """Hold an exclusive lock (``flock`` on the hidden sibling file ``.<name>.lock``) while ``target`` is built.

    A cached folder (a converted or pre-trained model) is written to a temporary sibling and renamed over
    ``target``. Two processes that find it missing at once (two runs started together, parallel test
    workers) would otherwise both build it, and the second rename would delete the folder under the first
    one's readers. The caller re-checks the cache inside the block: the second process waits, then finds
    the folder complete. The lock file stays (empty); the lock is released when the block ends or the
    process dies.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
