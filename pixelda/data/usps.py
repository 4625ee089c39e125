"""USPS (Hull 1994) from torchvision's files under DATA_ROOT/usps/: usps.bz2 (train, required)
and usps.t.bz2 (test, optional).

Read here rather than through torchvision.datasets.USPS so a malformed line is reported by its
number (and can be skipped with --skip-bad-files); --download still uses torchvision."""

import bz2
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .common import ImageSet, from_numpy_hwc

FILES = {"train": "usps.bz2", "test": "usps.t.bz2"}
PIXELS = 16 * 16


def _parse(line: str) -> tuple[int, np.ndarray]:
    """'LABEL 1:v1 ... 256:v256' (LABEL = digit + 1, v in [-1, 1]) -> (digit, float32 (256,))."""
    parts = line.split()
    if len(parts) != PIXELS + 1:
        raise ValueError(
            f"expected a label and {PIXELS} index:value pairs, got {len(parts)} fields"
        )
    label = int(float(parts[0])) - 1
    if not 0 <= label <= 9:
        raise ValueError(f"label {parts[0]} is not 1..10")
    values = np.empty(PIXELS, dtype=np.float32)
    for i, pair in enumerate(parts[1:], 1):
        index, _, value = pair.partition(":")
        if index != str(i):
            raise ValueError(f"expected index {i}, got {pair!r}")
        values[i - 1] = float(value)
    if not np.isfinite(values).all() or np.abs(values).max() > 1.0 + 1e-6:
        raise ValueError("pixel values outside [-1, 1]")
    return label, values


def read_usps(path: Path, *, skip_bad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 16, 16) images and int64 (N,) digits, scaled as torchvision scales them."""
    try:
        with bz2.open(path, "rt") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read USPS file ({e})") from None
    labels, images, bad = [], [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            label, values = _parse(line)
        except ValueError as e:
            if not skip_bad:
                raise UserError(f"{path}:{n}: {e}; --skip-bad-files skips such lines") from None
            bad.append(f"{path}:{n}: {e}")
            continue
        labels.append(label)
        images.append(values)
    if bad:
        print(f"warning: skipped {len(bad)} bad line(s) (first: {bad[0]})", file=sys.stderr)
    if not images:
        raise UserError(f"{path}: holds no USPS images")
    pixels = ((np.stack(images) + 1) / 2 * 255).astype(np.uint8)  # as torchvision's USPS
    return pixels.reshape(-1, 16, 16), np.asarray(labels, dtype=np.int64)


def load_usps(
    root: Path, split: str, *, download: bool = False, skip_bad: bool = False
) -> ImageSet | None:
    """7,291 / 2,007 USPS digits, uint8 (N, 1, 16, 16), int64 labels; None for a test split
    that is not there (the train split is required)."""
    folder = root / "usps"
    path = folder / FILES[split]
    if download and not path.is_file():
        import torchvision

        try:
            torchvision.datasets.USPS(str(folder), train=split == "train", download=True)
        except (OSError, ValueError, RuntimeError) as e:
            raise UserError(f"--download: cannot fetch USPS into {folder} ({e})") from None
    if not path.is_file():
        if split == "test":
            return None
        raise UserError(
            f"--data-root: {path} not found (torchvision's USPS train file; add --download "
            f"when online)"
        )
    images, labels = read_usps(path, skip_bad=skip_bad)
    return ImageSet(
        from_numpy_hwc(images),
        torch.from_numpy(labels),
        name=f"usps-{split}",
        classes=[str(i) for i in range(10)],
    )
