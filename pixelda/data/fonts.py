"""Synthetic labeled digits: 0-9 rendered with the fonts matplotlib ships, white on black, with
foreground masks. A stand-in for "renders with labels for free" that needs no download."""

import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..errors import UserError
from .common import ImageSet, from_numpy_hwc

# Text faces whose digits look like digits (symbol and display faces left out).
FONT_FILES = [
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmb10.ttf",
]
SIZES = {"train": 4000, "test": 1000}
SPLIT_SEEDS = {"train": 11, "test": 12}
CANVAS = 28


def font_files() -> list[Path]:
    spec = importlib.util.find_spec("matplotlib")
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" if spec else None
    files = [folder / name for name in FONT_FILES if folder and (folder / name).is_file()]
    if not files:
        raise UserError("fonts: matplotlib's fonts were not found; pip install matplotlib")
    return files


def render(digit: int, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> np.ndarray:
    """One digit, centred with a random shift and rotation -> uint8 (28, 28)."""
    big = Image.new("L", (CANVAS * 2, CANVAS * 2), 0)
    ImageDraw.Draw(big).text((CANVAS, CANVAS), str(digit), fill=255, font=font, anchor="mm")
    big = big.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR)
    dx, dy = rng.integers(-2, 3, size=2)
    box = (CANVAS // 2 + dx, CANVAS // 2 + dy, CANVAS // 2 + dx + CANVAS, CANVAS // 2 + dy + CANVAS)
    return np.asarray(big.crop(box))


def load_fonts(split: str) -> ImageSet:
    """SIZES[split] digits (uint8 (N, 1, 28, 28)), labels 0-9, masks = ink > 0; fixed per split."""
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    files = font_files()
    n = SIZES[split]
    labels = np.arange(n) % 10
    images = np.empty((n, CANVAS, CANVAS), dtype=np.uint8)
    fonts = {}
    for i, digit in enumerate(labels):
        key = (int(rng.integers(len(files))), int(rng.integers(24, 33)))  # face, point size
        if key not in fonts:
            fonts[key] = ImageFont.truetype(str(files[key[0]]), key[1])
        images[i] = render(int(digit), fonts[key], rng)
    masks = from_numpy_hwc((images > 0).astype(np.uint8))
    return ImageSet(
        from_numpy_hwc(images),
        torch.from_numpy(labels.astype(np.int64)),
        name=f"fonts-{split}",
        classes=[str(i) for i in range(10)],
        masks=masks,
    )
