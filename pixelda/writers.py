"""Adapted-dataset layouts (an ImageFolder of PNGs, or one .npz) and the staging folder that makes
an export appear whole or not at all."""

import csv
import os
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# zlib level 1: measured ~2.4x faster than PIL's default 6 on 32x32 outputs for ~18% larger
# files; level 0 (stored) is only ~15% faster again but ~3x larger (benchmarks/export_throughput.py).
PNG_COMPRESS_LEVEL = 1
# Fixed zip member timestamps: np.savez stamps the current time, which breaks byte-identity.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextmanager
def staged_directory(out: Path):
    """Yield an empty folder beside `out`; it replaces `out` only once the block succeeds.

    On any exception, KeyboardInterrupt included, the staging folder is removed and `out` is
    left as it was."""
    staging = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
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


def _hwc(image: torch.Tensor) -> np.ndarray:
    """uint8 (C, H, W) -> (H, W) for grayscale or (H, W, 3), as PIL wants it."""
    array = image.permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


class ImageFolderWriter:
    """DIR/<class>/<index>_<variant>.png plus DIR/labels.csv (file, label, source_index, variant).

    Class folders are named after `classes`; torchvision's ImageFolder sorts folder names, so
    its class indices equal ours whenever the names sort in index order (as "0".."9" do)."""

    def __init__(self, *, root: Path, classes: list[str], max_index: int):
        self.root = root
        self.classes = classes
        self.digits = len(str(max_index))  # zero-padded, so file names sort in source order
        for name in classes:
            (root / name).mkdir()
        # Open across write() calls, closed by close(); on an error the staging folder goes.
        self._csv_file = open(root / "labels.csv", "w", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file, lineterminator="\n")
        self._csv.writerow(["file", "label", "source_index", "variant"])

    def write(self, images: torch.Tensor, labels: torch.Tensor, source_index: torch.Tensor) -> None:
        """images: uint8 (B, K, C, H, W), K variants of each source; labels, source_index: (B,)."""
        for variants, label, index in zip(images, labels.tolist(), source_index.tolist()):
            for v, image in enumerate(variants):
                name = f"{self.classes[label]}/{index:0{self.digits}d}_{v}.png"
                Image.fromarray(_hwc(image)).save(
                    self.root / name, format="PNG", compress_level=PNG_COMPRESS_LEVEL
                )
                self._csv.writerow([name, label, index, v])

    def close(self) -> None:
        self._csv_file.close()


class NpzWriter:
    """DIR/adapted.npz: uint8 NHWC `images`, int64 `labels`, `source_index` and `variant`.

    Images stream into a preallocated .npy memmap in DIR (disk-backed, so memory stays flat
    whatever N is), which close() copies into the zip and deletes; the per-image integer arrays
    (24 bytes an image) are kept in memory."""

    def __init__(self, *, root: Path, num_sources: int, variants: int, shape: tuple[int, int, int]):
        c, h, w = shape
        self.path = root / "adapted.npz"
        self._npy = root / ".images.npy"
        n = num_sources * variants
        self._images = np.lib.format.open_memmap(self._npy, "w+", np.uint8, (n, h, w, c))
        self._columns = {
            name: np.zeros(n, np.int64) for name in ("labels", "source_index", "variant")
        }
        self._rows = 0

    def write(self, images: torch.Tensor, labels: torch.Tensor, source_index: torch.Tensor) -> None:
        """images: uint8 (B, K, C, H, W); rows go source-major: (source 0, variant 0..K-1), ..."""
        b, k = images.shape[:2]
        rows = slice(self._rows, self._rows + b * k)
        self._images[rows] = images.flatten(0, 1).permute(0, 2, 3, 1).numpy()
        self._columns["labels"][rows] = labels.repeat_interleave(k).numpy()
        self._columns["source_index"][rows] = source_index.repeat_interleave(k).numpy()
        self._columns["variant"][rows] = np.tile(np.arange(k), b)
        self._rows += b * k

    def close(self) -> None:
        self._images.flush()
        del self._images
        with zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with open(self._npy, "rb") as src, _member(zf, "images.npy") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            for name, column in self._columns.items():
                with _member(zf, f"{name}.npy") as dst:
                    np.lib.format.write_array(dst, column, allow_pickle=False)
        self._npy.unlink()


def _member(zf: zipfile.ZipFile, name: str):
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    return zf.open(info, "w", force_zip64=True)
