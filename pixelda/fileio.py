"""Atomic file writes: a temporary file beside the target, fsync, then rename.

A write that fails (disk full, permission denied, ...) raises a UserError naming the file and
the cause, and leaves the previous file, if any, as it was."""

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import UserError


def write_error(path: str | Path, e: OSError) -> UserError:
    """A one-line error for a failed write: the path and the system's reason."""
    return UserError(f"cannot write {path}: {e.strerror or e}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(obj, path: str | Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_png(image, path: str | Path) -> None:
    """Save a PIL image as PNG atomically."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def sha256_file(path: str | Path) -> str:
    """The file's SHA-256 as hex, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
