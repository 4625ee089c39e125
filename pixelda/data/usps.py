"""USPS (Hull 1994) through torchvision's files under DATA_ROOT/usps/ (usps.bz2, usps.t.bz2)."""

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .common import ImageSet, from_numpy_hwc

_FILES = {"train": "usps.bz2", "test": "usps.t.bz2"}


def load_usps(root: Path, split: str, *, download: bool = False) -> ImageSet:
    """7,291 / 2,007 USPS digits, uint8 (N, 1, 16, 16), int64 labels."""
    import torchvision

    folder = root / "usps"
    if not download and not (folder / _FILES[split]).is_file():
        raise UserError(
            f"--data-root: {folder / _FILES[split]} not found (torchvision's USPS "
            f"file; add --download when online)"
        )
    try:
        ds = torchvision.datasets.USPS(str(folder), train=split == "train", download=download)
    except (OSError, ValueError, RuntimeError) as e:
        raise UserError(f"--data-root: cannot read USPS under {folder} ({e})") from None
    labels = torch.as_tensor(np.asarray(ds.targets, dtype=np.int64))
    return ImageSet(
        from_numpy_hwc(np.asarray(ds.data, dtype=np.uint8)),
        labels,
        name=f"usps-{split}",
        classes=[str(i) for i in range(10)],
    )
