"""Folders too big for memory: decoded once into a uint8 cache on disk, then memory-mapped.

An entry is a folder CACHE/stream/<name>-<key>/ with images.u8 (N, C, S, S), masks.u8
(N, 1, S, S) when the files had masks, and meta.json. The key hashes what decides those bytes
(each file's path, size and mtime, the image size, channels and read options), so a changed
file makes a new entry; the entries it replaces (same folder, same settings: meta.json's
"origin") are then removed. Entries appear whole (written aside, then renamed) and are mapped
copy-on-write, so nothing a run does changes them.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..errors import UserError
from .common import from_numpy_hwc, match_channels

MODES = ("auto", "on", "off")
# auto streams a split whose decoded size is over this share of the memory available now.
FRACTION = 0.5
FORMAT, VERSION = "pixelda-stream", 1
CHUNK = 1024  # images decoded between writes to a new entry


def available_memory() -> int | None:
    """Bytes of memory available now: Linux's MemAvailable (free memory plus reclaimable page
    cache), else free or else physical pages from sysconf; None where none of them is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return os.sysconf(name) * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            continue
    return None


def wanted(mode: str, nbytes: int) -> bool:
    """Whether to stream a split of `nbytes` decoded bytes: `mode` on or off, or auto."""
    if mode == "auto":
        available = available_memory()
        return available is not None and nbytes > FRACTION * available
    return mode == "on"


def _stat(path: Path | None) -> list:
    if path is None:
        return []
    try:
        st = os.stat(path)
    except OSError:  # decoding reports it (or skips it); the key only has to differ
        return [os.path.abspath(path)]
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def fingerprint(files: list[Path | None], settings: dict) -> str:
    """A short hex digest of every file's absolute path, size and mtime, and the settings."""
    head = {**settings, "format": FORMAT, "version": VERSION, "pixelda": __version__}
    h = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    for f in files:
        h.update(json.dumps(_stat(f)).encode() + b"\n")
    return h.hexdigest()[:20]


def origin(name: str, files: list[Path | None], settings: dict) -> str:
    """What an entry is a cache *of*, whatever the files' sizes and mtimes: the split's name
    (folder-NAME-SPLIT), the folder its files share, and the settings. A new entry with the
    same origin makes the older ones stale."""
    names = [os.path.abspath(f) for f in files if f is not None]
    where = os.path.commonpath(names) if names else ""
    text = json.dumps(
        {**settings, "name": name, "where": where, "version": VERSION}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def prune(root: Path, origin_id: str, keep: str) -> list[Path]:
    """Remove the entries under root of the same origin as entry `keep` (older versions of the
    same folder) -> the removed folders. A run still mapping one keeps reading it (the files
    live on until unmapped)."""
    removed = []
    for meta_path in sorted(root.glob("*/meta.json")):
        entry = meta_path.parent
        try:
            same = json.loads(meta_path.read_text()).get("origin") == origin_id
        except (OSError, ValueError, AttributeError):
            continue
        if same and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _mapped(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    if path.stat().st_size != int(np.prod(shape)):
        raise ValueError(f"{path}: size does not match {shape}")
    # mode "c": copy-on-write, so the tensor is writable (torch warns on read-only arrays)
    # while the file itself is never written.
    return torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="c", shape=shape))


def open_entry(path: Path) -> tuple[torch.Tensor, torch.Tensor | None, dict] | None:
    """(images, masks or None, meta) of the entry at path, memory-mapped; None if there is no
    complete entry."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if (meta["format"], meta["version"]) != (FORMAT, VERSION):
            return None
        n, c, s = meta["n"], meta["channels"], meta["size"]
        images = _mapped(path / "images.u8", (n, c, s, s))
        masks = _mapped(path / "masks.u8", (n, 1, s, s)) if meta["masks"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return images, masks, meta


class Writer:
    """A new entry at `path`, chunk by chunk; `commit` makes it appear whole, and leaving the
    `with` block without committing removes what was written."""

    FILES = ("images.u8", "masks.u8")

    def __init__(self, path: Path):
        self.path, self.n, self.shape = path, 0, None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(
                tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            )
        except OSError as e:
            raise self._error(e) from None

    def _error(self, e: OSError) -> UserError:
        return UserError(
            f"--cache-dir: cannot write the stream cache {self.path} ({e.strerror or e}); "
            f"free space there, choose another --cache-dir, or pass --stream off"
        )

    def __enter__(self):
        return self

    def add(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        """Append uint8 images (n, C, S, S) and their masks (n, 1, S, S)."""
        self.shape = tuple(images.shape[1:])
        self.n += images.size(0)
        try:
            for name, part in zip(self.FILES, (images, masks)):
                with open(self.tmp / name, "ab") as f:
                    f.write(part.contiguous().numpy().tobytes())
        except OSError as e:
            raise self._error(e) from None

    def commit(self, *, masks: bool, **meta) -> None:
        """Write meta.json (with `meta`, e.g. which files were kept) and move the entry into
        place; masks False drops masks.u8 (no file had a mask)."""
        c, s, _ = self.shape
        head = {"format": FORMAT, "version": VERSION, "n": self.n, "channels": c, "size": s}
        try:
            if not masks:
                (self.tmp / "masks.u8").unlink()
            (self.tmp / "meta.json").write_text(json.dumps({**head, "masks": masks, **meta}))
            for name in os.listdir(self.tmp):  # on disk before the entry appears
                with open(self.tmp / name, "rb+") as f:
                    os.fsync(f.fileno())
            if open_entry(self.path) is not None:  # another process wrote it meanwhile
                return
            shutil.rmtree(self.path, ignore_errors=True)  # an incomplete entry, if any
            os.replace(self.tmp, self.path)
        except OSError as e:
            if open_entry(self.path) is None:  # not another process that got there first
                raise self._error(e) from None

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def load(
    path: Path,
    items,
    *,
    problems: list[str],
    total: int,
    channels: int | None,
    where: str,
    origin_id: str = "",
) -> tuple[torch.Tensor, torch.Tensor | None, dict] | None:
    """open_entry(path), after writing the entry from `items` if there is none; None if
    `items` is empty.

    items: lazy (index, image (S, S, C), mask (S, S), whether it had one) of each readable file
    (folder.decoded); problems: the list it appends unreadable files to, kept in meta.json;
    total: the number of files, for the progress bar; channels: convert the images to that
    many as they are written; origin_id: see origin(), stale entries of it are removed once
    the new one is in place."""
    entry = open_entry(path)
    if entry is not None:
        return entry
    kept, found = [], False
    bar = tqdm(items, total=total, desc=f"decoding {where}", unit="img", leave=False, disable=None)
    with bar, Writer(path) as writer:
        for part in _chunks(bar, CHUNK):
            index, images, masks, has_mask = zip(*part)
            kept += index
            found = found or any(has_mask)
            x = from_numpy_hwc(np.stack(images))
            # As load()'s conform does to a set read into memory; image by image, so the same.
            x = x if channels is None else match_channels(x, channels)
            writer.add(x, from_numpy_hwc(np.stack(masks)))
        if not kept:
            return None
        writer.commit(masks=found, kept=kept, problems=problems, origin=origin_id)
    if origin_id:
        stale = prune(path.parent, origin_id, keep=path.name)
        if stale:
            print(
                f"removed {len(stale)} stale stream cache entr{'y' if len(stale) == 1 else 'ies'} "
                f"of {where} (its files changed)",
                file=sys.stderr,
            )
    return open_entry(path)


def _chunks(items, n: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
