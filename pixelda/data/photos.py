"""Colour photos for MNIST-M backgrounds: a folder of images, or the ones pip packages ship."""

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

# Real colour photographs shipped by scikit-image and scikit-learn (synthetic test patterns,
# grayscale and microscope images left out).
EMBEDDED_PHOTOS = {
    "skimage": [
        "data/astronaut.png",
        "data/chelsea.png",
        "data/coffee.png",
        "data/hubble_deep_field.jpg",
        "data/motorcycle_left.png",
        "data/motorcycle_right.png",
        "data/rocket.jpg",
    ],
    "sklearn": ["datasets/images/china.jpg", "datasets/images/flower.jpg"],
}


def embedded_photo_files() -> list[Path]:
    files = []
    for package, names in EMBEDDED_PHOTOS.items():
        spec = importlib.util.find_spec(package)
        if spec is None:
            continue
        base = Path(spec.origin).parent
        files += [base / n for n in names if (base / n).is_file()]
    if not files:
        raise UserError(
            "embedded data: no photos found; pip install scikit-image scikit-learn, "
            "or pass --photos DIR"
        )
    return files


def photo_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"--photos: {folder} is not a folder of photos")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"--photos: no image files (.jpg, .png, ...) in {folder}")
    return files


def load_photos(files: list[Path], min_size: int = 28) -> list[np.ndarray]:
    """Decode photos as uint8 (H, W, 3); unreadable or too-small files are an error."""
    photos = []
    for path in files:
        try:
            with Image.open(path) as im:
                photo = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise UserError(f"--photos: cannot read {path} ({e})") from None
        if min(photo.shape[:2]) < min_size:
            raise UserError(f"--photos: {path} is smaller than {min_size}x{min_size}")
        photos.append(photo)
    return photos
