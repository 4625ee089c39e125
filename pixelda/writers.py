"""Adapted-dataset layouts (an ImageFolder of PNGs, or one .npz) and the staging folder that makes
an export appear whole or not at all."""

import csv
import glob
import os
import shutil
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .ownership import write_marker

# zlib level 1: measured ~2.4x faster than PIL's default 6 on 32x32 outputs for ~18% larger
# files; level 0 (stored) is only ~15% faster again but ~3x larger (benchmarks/export_throughput.py).
PNG_COMPRESS_LEVEL = 1
# Fixed zip member timestamps: np.savez stamps the current time, which breaks byte-identity.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextmanager
def staged_directory(out: Path):
    """Yield an empty folder (marked as an export) beside `out`; it replaces `out` only once
    the block succeeds.

    On any exception, KeyboardInterrupt included, the staging folder is removed and `out` is
    left as it was. The caller holds `out`'s lock, so what earlier exports of `out` left
    beside it is cleaned up first (remove_stale)."""
    remove_stale(out)
    staging = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_marker(staging, "export")
    try:
        yield staging
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, out: Path) -> None:
    # A rename cannot replace a non-empty folder, so the old one steps aside first and is
    # deleted only after the new one is in place.
    if not out.exists():
        os.rename(staging, out)
        return
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(out: Path) -> None:
    """Delete the staging folders (OUT.partial-PID) of exports of `out` whose process died, and
    put back an old export (OUT.old-PID) one died while swapping, if `out` is missing. Only
    folders of that exact name pattern whose PID is no live process; one line on stderr."""
    found = []
    for kind in ("old", "partial"):
        for path in sorted(out.parent.glob(f"{glob.escape(out.name)}.{kind}-*")):
            pid = path.name.rsplit("-", 1)[1]
            if path.is_symlink() or not path.is_dir() or not pid.isdigit() or _alive(int(pid)):
                continue
            if kind == "old" and not out.exists():
                os.rename(path, out)
                found.append(f"restored {out} from {path.name}")
            else:
                shutil.rmtree(path)
                found.append(f"removed {path.name}")
    if found:
        print(
            f"export: cleaned up after an export that was killed: {'; '.join(found)}",
            file=sys.stderr,
        )


def _hwc(image: torch.Tensor) -> np.ndarray:
    """uint8 (C, H, W) -> (H, W) for grayscale or (H, W, 3), as PIL wants it."""
    array = image.permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


class ImageFolderWriter:
    """DIR/<class>/<index>_<variant>.png plus DIR/labels.csv (file, label, source_index, variant).

    Class folders are named after `classes`; torchvision's ImageFolder sorts folder names, so
    its class indices equal ours whenever the names sort in index order (as "0".."9" do).
    `labels` and `source_index` describe every exported source, in order; write() may be called
    by several processes for different batches, close() by one once all are written."""

    def __init__(
        self,
        *,
        root: Path,
        classes: list[str],
        max_index: int,
        labels: torch.Tensor,
        source_index: torch.Tensor,
        variants: int,
        create: bool = True,
    ):
        self.root, self.classes, self.variants = root, classes, variants
        self.labels, self.source_index = labels.tolist(), source_index.tolist()
        self.digits = len(str(max_index))  # zero-padded, so file names sort in source order
        if create:
            for name in classes:
                (root / name).mkdir()

    def _name(self, label: int, index: int, variant: int) -> str:
        return f"{self.classes[label]}/{index:0{self.digits}d}_{variant}.png"

    def write(self, images: torch.Tensor, start: int) -> None:
        """images: uint8 (B, K, C, H, W), K variants of the sources at start..start+B-1."""
        for offset, variants in enumerate(images):
            label, index = self.labels[start + offset], self.source_index[start + offset]
            for v, image in enumerate(variants):
                Image.fromarray(_hwc(image)).save(
                    self.root / self._name(label, index, v),
                    format="PNG",
                    compress_level=PNG_COMPRESS_LEVEL,
                )

    def flush(self) -> None:
        """Each PNG is complete on disk once written: nothing to do."""

    def close(self) -> None:
        with open(self.root / "labels.csv", "w", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(["file", "label", "source_index", "variant"])
            for label, index in zip(self.labels, self.source_index):
                for v in range(self.variants):
                    out.writerow([self._name(label, index, v), label, index, v])


class NpzWriter:
    """DIR/adapted.npz: uint8 NHWC `images`, int64 `labels`, `source_index` and `variant`.

    Images go into a preallocated .npy memmap in DIR (disk-backed, so memory stays flat
    whatever N is; several processes may each fill their own rows), which close() copies into
    the zip and deletes; the per-image integer arrays (24 bytes an image) are kept in memory."""

    def __init__(
        self,
        *,
        root: Path,
        labels: torch.Tensor,
        source_index: torch.Tensor,
        variants: int,
        shape: tuple[int, int, int],
        create: bool = True,
    ):
        c, h, w = shape
        self.path, self.variants = root / "adapted.npz", variants
        self._npy = root / ".images.npy"
        n = len(labels) * variants
        if create:
            self._images = np.lib.format.open_memmap(self._npy, "w+", np.uint8, (n, h, w, c))
        else:
            self._images = np.load(self._npy, mmap_mode="r+")
        # Rows go source-major: (source 0, variant 0..K-1), (source 1, ...), ...
        self._columns = {
            "labels": labels.repeat_interleave(variants).numpy(),
            "source_index": source_index.repeat_interleave(variants).numpy(),
            "variant": np.tile(np.arange(variants), len(labels)),
        }

    def write(self, images: torch.Tensor, start: int) -> None:
        """images: uint8 (B, K, C, H, W), K variants of the sources at start..start+B-1."""
        b, k = images.shape[:2]
        rows = slice(start * k, (start + b) * k)
        self._images[rows] = images.flatten(0, 1).permute(0, 2, 3, 1).numpy()

    def flush(self) -> None:
        """This process's rows on disk, for the process that zips them (another one under
        torchrun, possibly on another machine sharing the filesystem)."""
        self._images.flush()

    def close(self) -> None:
        self._images.flush()
        del self._images
        with zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with open(self._npy, "rb") as src, _member(zf, "images.npy") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            for name, column in self._columns.items():
                with _member(zf, f"{name}.npy") as dst:
                    np.lib.format.write_array(dst, column.astype(np.int64), allow_pickle=False)
        self._npy.unlink()


def _member(zf: zipfile.ZipFile, name: str):
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    return zf.open(info, "w", force_zip64=True)
