"""MNIST-M (Ganin et al. 2016): MNIST digits blended with random crops of colour photos.

Ganin's release (DATA_ROOT/mnist_m/mnist_m_{train,test}/ with its labels .txt) when present;
its test split is optional. Otherwise built with the published recipe at the output size,
deterministic for a seed and cached on disk.
"""

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import UserError
from ..fileio import atomic_write_bytes
from .common import ImageSet, from_numpy_hwc
from .photos import load_photos

RECIPE_VERSION = 2  # 2: composed at the output size (1: at 28x28, then resized)
# Fixed seeds, independent of --seed, so every run is evaluated on the same MNIST-M test set.
SPLIT_SEEDS = {"train": 1, "test": 2}


def compose(digits: np.ndarray, photos: list[np.ndarray], seed: int) -> np.ndarray:
    """For each digit a random crop of a random photo; output = |crop - binarised digit * 255|.

    digits: uint8 (N, H, W); photos: uint8 (h, w, 3) with h >= H, w >= W -> uint8 (N, H, W, 3).
    """
    rng = np.random.default_rng(seed)
    n, h, w = digits.shape
    which = rng.integers(len(photos), size=n)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    ink = (digits > 0).astype(np.int16)[..., None] * 255
    for i in range(n):
        photo = photos[which[i]]
        y = rng.integers(photo.shape[0] - h + 1)
        x = rng.integers(photo.shape[1] - w + 1)
        out[i] = np.abs(photo[y : y + h, x : x + w].astype(np.int16) - ink[i])
    return out


def _cache_key(digits: np.ndarray, photo_files: list[Path], seed: int) -> str:
    h = hashlib.sha256(f"mnistm-v{RECIPE_VERSION}-seed{seed}-{digits.shape}".encode())
    h.update(hashlib.sha256(digits.tobytes()).digest())
    for p in photo_files:
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:20]


def cached_array(path: Path | None, build) -> np.ndarray:
    """np.load(path) if it exists, else build() saved there atomically (no cache: path None)."""
    if path is not None and path.is_file():
        return np.load(path)
    array = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, array)
        atomic_write_bytes(path, buf.getvalue())
    return array


def digits_at(images: torch.Tensor, size: int) -> np.ndarray:
    """uint8 (N, 1, h, w) digits -> uint8 (N, size, size), ink kept binary: the digits are
    binarised (> 0, as the recipe does) before a resize and thresholded at half after it, so
    the composite is drawn at the output size with sharp strokes, never resized afterwards."""
    if images.shape[-1] == size:
        return images[:, 0].numpy()
    ink = (images > 0).float()
    out = [F.interpolate(part, size=(size, size), mode="bilinear") for part in ink.split(4096)]
    return (torch.cat(out)[:, 0] >= 0.5).to(torch.uint8).mul_(255).numpy()


def build_mnistm(
    mnist: ImageSet, photo_files: list[Path], *, split: str, size: int, cache_dir: Path | None
) -> ImageSet:
    """MNIST-M images (N, 3, size, size) composed at `size` from `mnist` (uint8 (N, 1, h, w),
    framed as the release frames them), with the same labels."""
    digits = digits_at(mnist.images, size)
    seed = SPLIT_SEEDS[split]
    key = _cache_key(digits, photo_files, seed)
    cached = cache_dir / f"mnistm-{split}-{key}.npy" if cache_dir else None
    images = cached_array(
        cached, lambda: compose(digits, load_photos(photo_files, min_size=size), seed)
    )
    name = mnist.name.replace("mnist", "mnistm", 1)
    return ImageSet(from_numpy_hwc(images), mnist.labels, name=name, classes=mnist.classes)


def find_release(root: Path) -> Path | None:
    folder = root / "mnist_m"
    return folder if (folder / "mnist_m_train_labels.txt").is_file() else None


def release_test_missing(folder: Path) -> str | None:
    """Why the release in `folder` has no test split (None when it has one)."""
    listing = folder / "mnist_m_test_labels.txt"
    return None if listing.is_file() else f"{listing} not found"


def _release_rows(listing: Path) -> list[tuple[int, str, int]]:
    """(line number, file name, label) for every row of a release labels file."""
    try:
        text = listing.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{listing}: cannot read labels file ({e})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or not 0 <= int(parts[1]) <= 9:
            raise UserError(f"{listing}:{n}: expected 'NAME.png LABEL' (0..9), got {line!r}")
        rows.append((n, parts[0], int(parts[1])))
    if not rows:
        raise UserError(f"{listing}: lists no images")
    return rows


def _decode_release(folder: Path, split: str, skip_bad: bool) -> tuple[np.ndarray, np.ndarray]:
    listing = folder / f"mnist_m_{split}_labels.txt"
    images, labels, bad = [], [], []
    for n, name, label in _release_rows(listing):
        path = folder / f"mnist_m_{split}" / name
        try:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError) as e:
            problem = f"{listing}:{n}: cannot read {path} ({e})"
            if not skip_bad:
                raise UserError(problem + "; --skip-bad-files skips such rows") from None
            bad.append(problem)
            continue
        labels.append(label)
    if bad:
        print(f"warning: skipped {len(bad)} unreadable image(s) (first: {bad[0]})", file=sys.stderr)
    if not images:
        raise UserError(f"{listing}: no readable images")
    if len({im.shape for im in images}) > 1:
        raise UserError(f"{folder / f'mnist_m_{split}'}: images differ in size")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_release(
    folder: Path, split: str, *, cache_dir: Path | None = None, skip_bad: bool = False
) -> ImageSet | None:
    """Ganin's release: mnist_m_{split}/NAME.png listed with labels in mnist_m_{split}_labels.txt;
    None for a test split the copy does not have. Decoded once, then cached (keyed by the labels
    file's contents and the image folder's modification time)."""
    if split == "test" and release_test_missing(folder):
        return None
    listing = folder / f"mnist_m_{split}_labels.txt"
    images_dir = folder / f"mnist_m_{split}"
    if not images_dir.is_dir():
        raise UserError(f"{listing}: names images in {images_dir}, which is not a folder")
    h = hashlib.sha256(listing.read_bytes())
    h.update(f"{images_dir.stat().st_mtime_ns}-{skip_bad}".encode())
    stem = cache_dir / f"mnistm-release-{split}-{h.hexdigest()[:20]}" if cache_dir else None
    pairs = {}

    def build(part):
        if not pairs:
            pairs["images"], pairs["labels"] = _decode_release(folder, split, skip_bad)
        return pairs[part]

    images = cached_array(stem and stem.with_suffix(".images.npy"), lambda: build("images"))
    labels = cached_array(stem and stem.with_suffix(".labels.npy"), lambda: build("labels"))
    return ImageSet(
        from_numpy_hwc(images),
        torch.from_numpy(labels),
        name=f"mnistm-{split}",
        classes=[str(i) for i in range(10)],
    )
