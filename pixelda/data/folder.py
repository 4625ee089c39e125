"""Images from a folder: class sub-folders (torchvision's ImageFolder layout) or a flat folder.

A folder with train/ and test/ sub-folders gives those splits; a labeled folder without them
holds out a fixed 10% as its test split; a flat folder is unlabeled and all of it is train.
"""

import hashlib
import struct
import warnings
from contextlib import contextmanager
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


# Pillow modes read as one channel: bilevel, 8-bit, 16-bit and 32-bit integer grayscale.
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N")


# What Pillow's decoders raise on corrupt input (besides OSError); refused as one-line errors.
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@contextmanager
def _opened(path: Path):
    """Image.open(path) for an untrusted file: any failure to decode it, a decompression bomb
    (over Pillow's MAX_IMAGE_PIXELS, ~89 Mpx) included, is a UserError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except DECODE_ERRORS as e:
        raise UserError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


def _eight_bit(im: Image.Image, path: Path) -> Image.Image:
    """8-bit L, RGB or RGBA: 16-bit and 32-bit integer grayscale scaled from 0..65535 (Pillow's
    convert would clip them, making most pixels white); palettes with transparency via RGBA."""
    if im.mode.startswith("I"):
        array = np.asarray(im, dtype=np.float64) / 257
        return Image.fromarray(array.clip(0, 255).round().astype(np.uint8), "L")
    if im.mode == "F":
        raise UserError(f"{path}: floating-point images are not supported; save it as 8-bit")
    if im.mode == "P" and "transparency" in im.info:
        return im.convert("RGBA")
    return im


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 (size, size, channels), resized with bilinear filtering; CMYK,
    palette, alpha and 16-bit images converted."""
    with _opened(path) as im:
        im = _eight_bit(im, path).convert("L" if channels == 1 else "RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        array = np.asarray(im)
    return array if channels == 3 else array[..., None]


def folder_channels(path: Path) -> int:
    with _opened(path) as im:
        return 1 if im.mode in GRAY_MODES else 3


def _relative(path: Path, root: Path) -> Path:
    """path below root, or path itself (a CSV manifest may list absolute paths)."""
    try:
        return path.relative_to(root)
    except ValueError:
        return path


def held_out(files: list[Path], root: Path) -> np.ndarray:
    """A fixed pseudo-random 10% of files, chosen by a hash of their relative path."""
    keys = [int(hashlib.sha1(str(_relative(f, root)).encode()).hexdigest()[:8], 16) for f in files]
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
    if not files:
        raise UserError(
            f"folder:{folder}: no images fall in its held-out {split} split (10% of the files, "
            f"chosen by name); add images, or give train/ and test/ sub-folders"
        )
    channels = folder_channels(files[0])
    images = np.stack([decode(f, size, channels) for f in files])
    return ImageSet(
        from_numpy_hwc(images),
        None if labels is None else torch.tensor(labels, dtype=torch.int64),
        name=f"folder-{folder.name}-{split}",
        classes=classes,
    )
