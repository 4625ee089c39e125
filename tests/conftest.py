"""Shared fixtures: tiny, fast, offline configurations and data folders made on the fly."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Small enough for 2 CPU cores: 16x16 images, narrow models, a few steps.
TINY = [
    "--image-size",
    "16",
    "--batch-size",
    "4",
    "--g-width",
    "8",
    "--g-blocks",
    "1",
    "--d-width",
    "8",
    "--steps",
    "4",
    "--eval-every",
    "2",
    "--sample-every",
    "2",
    "--checkpoint-every",
    "2",
    "--log-every",
    "1",
    "--val-size",
    "100",
    "--no-progress",
    # the label-free validators on 64 images, not 1,000 (pixelda/validators.py)
    "--validation-images",
    "64",
]


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    """Built datasets (MNIST-M) are cached once per test session, not in the user's home."""
    os.environ["PIXELDA_CACHE_DIR"] = str(tmp_path_factory.mktemp("pixelda-cache"))
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_args(tmp_path):
    """Flags for a tiny run on the embedded data, writing into a fresh run directory."""
    return [*TINY, "--out", str(tmp_path / "run")]


def write_image_folder(
    root: Path,
    *,
    classes: int = 3,
    per_class: int = 4,
    size: int = 20,
    mode: str = "RGB",
    seed: int = 0,
) -> Path:
    """An ImageFolder layout root/<class>/<i>.png of random images, deterministic."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
            Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
                root / f"class{c}" / f"{i}.png"
            )
    return root


requires_shared = pytest.mark.skipif(
    not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"real data not found under {SHARED_DATA}",
)


def tiny_pixelda(channels: int = 1, **overrides):
    """(cfg, models, optimizers, batch): a narrow PixelDA on 16x16 images with 10 classes and a
    batch of 4 random source (labels 0..3) and target images; seeded, `overrides` on top of
    the default config. For tests that run one D-step or G-step by hand."""
    from pixelda.batches import Batch
    from pixelda.config import resolve
    from pixelda.methods import DataInfo, pixelda

    torch.manual_seed(0)
    cfg = resolve({"g_width": 8, "g_blocks": 1, "d_width": 8, **overrides})
    classes = [str(i) for i in range(10)]
    info = DataInfo(channels=channels, image_size=16, num_outputs=10, classes=classes)
    m = pixelda.build(cfg, info)
    opts = pixelda.optimizers(m, cfg)
    batch = Batch(
        x_src=torch.rand(4, channels, 16, 16) * 2 - 1,
        y_src=torch.tensor([0, 1, 2, 3]),
        mask_src=None,
        x_tgt=torch.rand(4, channels, 16, 16) * 2 - 1,
    )
    return cfg, m, opts, batch


def state_of(module) -> dict:
    """A copy of module's state_dict, to compare with a later one (same_state)."""
    return {k: v.clone() for k, v in module.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)
