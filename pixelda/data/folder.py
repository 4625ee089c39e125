"""Images from a folder: class sub-folders (torchvision's ImageFolder layout) or a flat folder.

A folder with train/ and test/ sub-folders gives those splits; a labeled folder without them
holds out a fixed 10% as its test split; a flat folder is unlabeled and all of it is train.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .common import ImageSet, from_numpy_hwc
from .photos import IMAGE_SUFFIXES

TEST_FRACTION = 0.1


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan(folder: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """Files, labels and class names of a folder (labels None when it is flat)."""
    if not folder.is_dir():
        raise UserError(f"folder:{folder}: not a folder")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if class_dirs:
        files, labels = [], []
        for label, d in enumerate(class_dirs):
            found = _images_in(d)
            files += found
            labels += [label] * len(found)
        classes = [d.name for d in class_dirs]
    else:
        files, labels, classes = _images_in(folder), None, None
    if not files:
        raise UserError(f"folder:{folder}: no image files (.png, .jpg, ...) found")
    return files, labels, classes


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 (size, size, channels), resized with bilinear filtering."""
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            array = np.asarray(im)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: cannot read image ({e})") from None
    return array if channels == 3 else array[..., None]


def folder_channels(path: Path) -> int:
    try:
        with Image.open(path) as im:
            return 1 if im.mode in ("1", "L", "I", "I;16", "F") else 3
    except OSError as e:
        raise UserError(f"{path}: cannot read image ({e})") from None


def held_out(files: list[Path], root: Path) -> np.ndarray:
    """A fixed pseudo-random 10% of files, chosen by a hash of their relative path."""
    keys = [int(hashlib.sha1(str(f.relative_to(root)).encode()).hexdigest()[:8], 16) for f in files]
    return np.array([k % 1000 < TEST_FRACTION * 1000 for k in keys])


def load_folder(folder: Path, split: str, *, size: int) -> ImageSet | None:
    """The split of a folder as an ImageSet, or None for the test split of a flat folder.

    split "eval" is a folder given as a test set: its test/ sub-folder if it has one, else all."""
    has_splits = (folder / "train").is_dir() and (folder / "test").is_dir()
    if split == "eval":
        files, labels, classes = scan(folder / "test" if has_splits else folder)
    elif has_splits:
        files, labels, classes = scan(folder / split)
    else:
        files, labels, classes = scan(folder)
        if labels is None:
            if split == "test":
                return None
        else:
            test = held_out(files, folder)
            keep = test if split == "test" else ~test
            files = [f for f, k in zip(files, keep) if k]
            labels = [l for l, k in zip(labels, keep) if k]
    channels = folder_channels(files[0])
    images = np.stack([decode(f, size, channels) for f in files])
    return ImageSet(
        from_numpy_hwc(images),
        None if labels is None else torch.tensor(labels, dtype=torch.int64),
        name=f"folder-{folder.name}-{split}",
        classes=classes,
    )
