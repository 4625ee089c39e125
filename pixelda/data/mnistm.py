"""MNIST-M (Ganin et al. 2016): MNIST digits blended with random crops of colour photos.

Built with the published recipe, deterministic for a seed, cached on disk; or read from
Ganin's release layout (mnist_m/mnist_m_{train,test}/ + labels .txt) when it is present.
"""

import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..fileio import atomic_write_bytes
from .common import ImageSet, from_numpy_hwc
from .photos import load_photos

RECIPE_VERSION = 1
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
    h = hashlib.sha256(f"mnistm-v{RECIPE_VERSION}-seed{seed}".encode())
    h.update(hashlib.sha256(digits.tobytes()).digest())
    for p in photo_files:
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:20]


def build_mnistm(
    mnist: ImageSet, photo_files: list[Path], *, split: str, cache_dir: Path | None
) -> ImageSet:
    """MNIST-M images built from `mnist` (uint8 (N, 1, 28, 28)) with the same labels."""
    digits = mnist.images[:, 0].numpy()
    seed = SPLIT_SEEDS[split]
    key = _cache_key(digits, photo_files, seed)
    cached = cache_dir / f"mnistm-{split}-{key}.npy" if cache_dir else None
    if cached is not None and cached.is_file():
        images = np.load(cached)
    else:
        images = compose(digits, load_photos(photo_files, min_size=digits.shape[1]), seed)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.save(buf, images)
            atomic_write_bytes(cached, buf.getvalue())
    name = mnist.name.replace("mnist", "mnistm", 1)
    return ImageSet(from_numpy_hwc(images), mnist.labels, name=name, classes=mnist.classes)


def find_release(root: Path) -> Path | None:
    folder = root / "mnist_m"
    return folder if (folder / "mnist_m_train_labels.txt").is_file() else None


def load_release(folder: Path, split: str) -> ImageSet:
    """Ganin's release: mnist_m_{split}/NAME.png listed with labels in mnist_m_{split}_labels.txt."""
    listing = folder / f"mnist_m_{split}_labels.txt"
    if not listing.is_file():
        raise UserError(
            f"mnistm: {listing} is missing (Ganin's release lists its {split} labels there)"
        )
    images, labels = [], []
    for n, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise UserError(f"{listing}:{n}: expected 'NAME.png LABEL', got {line!r}")
        path = folder / f"mnist_m_{split}" / parts[0]
        try:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB")))
        except OSError as e:
            raise UserError(f"{path}: cannot read image ({e})") from None
        labels.append(int(parts[1]))
    if not images:
        raise UserError(f"{listing}: lists no images")
    return ImageSet(
        from_numpy_hwc(np.stack(images)),
        torch.tensor(labels),
        name=f"mnistm-{split}",
        classes=[str(i) for i in range(10)],
    )
