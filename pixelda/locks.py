"""Exclusive advisory locks on output folders: one writer per run folder or export destination.

The lock is an flock(2) on a hidden file beside the folder (`PARENT/.NAME.pixelda-lock`), not
inside it: --overwrite deletes the folder, and a lock file deleted with it would let a second
writer lock a fresh file. The kernel drops an flock when its process dies, so a lock left by a
killed process never blocks the next one; a live holder makes the next writer exit 2."""

import errno
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError
from .fileio import write_error

try:
    import fcntl
except ImportError:  # Windows: no flock, so no locking there (docs/guarantees.md)
    fcntl = None


def lock_path(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.pixelda-lock")


def _missing_ancestors(folder: Path) -> list[Path]:
    """The ancestors of folder that do not exist yet."""
    return [p for p in folder.parents if not p.exists()]


def _flock(fd: int, path: Path, folder: Path, flag: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(
            f"{flag}: {folder} is in use by another pixelda process (it holds {path}); "
            f"wait for it to finish or choose another folder"
        ) from None


def _acquire(path: Path, folder: Path, flag: str) -> tuple[int, Path | None]:
    """(an open descriptor holding an exclusive flock, the lock file to unlink on release).

    The lock file beside `folder`, created if need be; where its parent cannot be written to
    but `folder` exists (a read-only parent), the folder itself is locked instead."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS) or not folder.is_dir():
                raise write_error(path, e) from None
            fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
            _flock(fd, folder, folder, flag)
            return fd, None
        _flock(fd, path, folder, flag)
        # A holder that was releasing may have unlinked the file we opened: lock the new one.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd, path
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def hold(folder: Path, *, flag: str = "--out"):
    """Hold the lock on `folder` (which need not exist yet) for the block.

    Creates the folder's missing parents to hold the lock file, and removes those that are
    still empty afterwards; on release the lock file is unlinked (while still locked, so no
    other process can be holding it). Under torchrun only rank 0, the one that writes, locks."""
    if fcntl is None or os.environ.get("RANK", "0") != "0":
        yield None
        return
    folder = Path(folder)
    created = _missing_ancestors(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(folder.parent, e) from None
    try:
        fd, path = _acquire(lock_path(folder), folder, flag)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        if path is not None:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for a person wondering who holds it
        yield path
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
        os.close(fd)
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """rmdir each folder that is empty, deepest first (one we created and nothing filled)."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass
