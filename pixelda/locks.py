"""Exclusive advisory locks on output folders: one writer per run folder or export destination.

The lock is an flock(2) on a hidden file beside the folder (`PARENT/.NAME.pixelda-lock`), not
inside it: --overwrite deletes the folder, and a lock file deleted with it would let a second
writer lock a fresh file. The kernel drops an flock when its process dies, so a lock left by a
killed process never blocks the next one; a live holder makes the next writer exit 2."""

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError
from .fileio import write_error


def lock_path(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.pixelda-lock")


def _missing_ancestors(folder: Path) -> list[Path]:
    """The ancestors of folder that do not exist yet."""
    return [p for p in folder.parents if not p.exists()]


def _acquire(path: Path, folder: Path, flag: str) -> int:
    """An open descriptor holding an exclusive flock on `path`, created if need be."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise write_error(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{flag}: {folder} is in use by another pixelda process (it holds {path}); "
                f"wait for it to finish or choose another folder"
            ) from None
        # A holder that was releasing may have unlinked the file we opened: lock the new one.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def hold(folder: Path, *, flag: str = "--out"):
    """Hold the lock on `folder` (which need not exist yet) for the block.

    Creates the folder's missing parents to hold the lock file, and removes those that are
    still empty afterwards; on release the lock file is unlinked (while still locked, so no
    other process can be holding it). Under torchrun only rank 0, the one that writes, locks."""
    if os.environ.get("RANK", "0") != "0":
        yield None
        return
    folder = Path(folder)
    created = _missing_ancestors(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(folder.parent, e) from None
    path = lock_path(folder)
    try:
        fd = _acquire(path, folder, flag)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for a person wondering who holds it
        yield path
    finally:
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
