"""The Python API for notebooks and pipelines: pixelda.train, pixelda.load, pixelda.export,
pixelda.evaluate and pixelda.select.

Usage: run = pixelda.train(steps=300, out="runs/nb"); adapter = pixelda.load(run.best)
       x_fake = adapter.adapt(x_src, seed=0); labels = adapter.classify(x_fake)

The same configs, defaults and checks as the command line; a bad input raises UserError.
"""

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import checkpoint as checkpoint_io
from . import selection
from .config import TrainConfig
from .data.common import match_channels, resize, to_float
from .errors import UserError
from .evaluation import EvaluateConfig, evaluate_checkpoint
from .exporting import ExportConfig, export_config
from .helpers import eval_mode, predictor, uniform_noise
from .methods import METHODS, restore
from .rundir import RunDir
from .runtime import pick_device
from .training import config_from_overrides, train_config


@dataclass
class TrainResult:
    """A finished (or interrupted) run: its folder, summary.json, metrics.jsonl, ckpt.pt (the
    last step) and best.pt (the best validation score; None when nothing was validated)."""

    path: Path
    summary: dict
    metrics: list[dict]
    checkpoint: Path
    best: Path | None = None

    def load(self, device: str = "cpu") -> "Adapter":
        return load(self.checkpoint, device=device)


def _check_options(cls, options: dict, what: str) -> dict:
    """Keyword options -> the same values the flags would give; unknown names and wrong types
    are a UserError naming the option."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    checked = {}
    for name, value in options.items():
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"{what}: unknown option {name!r}{hint}")
        kind = type(getattr(defaults, name))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif kind is str and isinstance(value, Path):
            value = str(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UserError(f"{what}: {name} expects {kind.__name__}, got {value!r}")
        checked[name] = value
    return checked


def train(**overrides) -> TrainResult:
    """Train as `python -m pixelda.train` would with the matching flags: keys are TrainConfig
    field names (steps=300, image_size=16, out="runs/x", resume=True, ...)."""
    cfg, ckpt = config_from_overrides(_check_options(TrainConfig, overrides, "pixelda.train"))
    summary = train_config(cfg, ckpt)
    rundir = RunDir(cfg.out)
    return TrainResult(
        path=rundir.path,
        summary=summary,
        metrics=rundir.read_metrics(),
        checkpoint=rundir.ckpt,
        best=rundir.best if rundir.best.is_file() else None,
    )


def export(checkpoint, out, **options) -> Path:
    """Write an adapted dataset as tools/export_adapted.py would; options are ExportConfig
    field names (variants=2, format="npz", limit=100, ...) -> the output folder."""
    options = _check_options(
        ExportConfig, {"checkpoint": checkpoint, "out": out, **options}, "pixelda.export"
    )
    cfg = ExportConfig(**options)
    export_config(cfg)
    return Path(cfg.out).expanduser().resolve()


def evaluate(checkpoint, **options) -> dict:
    """Score a checkpoint's classifier as `python -m pixelda.evaluate` would; options are
    EvaluateConfig field names (data="usps", split="val", ...) -> {"acc" or "rmse", "n", ...}."""
    options = _check_options(
        EvaluateConfig, {"checkpoint": str(checkpoint), **options}, "pixelda.evaluate"
    )
    return evaluate_checkpoint(EvaluateConfig(**options))


def select(runs, by: str = selection.DEFAULT) -> list[dict]:
    """Rank runs' checkpoints by a label-free validator as `python -m pixelda.select` would ->
    one dict per checkpoint, best first (selection.select says what each holds)."""
    if isinstance(runs, (str, Path)):
        runs = [runs]
    return selection.select(list(runs), by=by)


def load(checkpoint, device: str = "cpu") -> "Adapter":
    """A trained run, ready to use: checkpoint is a ckpt.pt or a run folder holding one."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        path = path / "ckpt.pt"
    if not path.is_file():
        raise UserError(f"pixelda.load: no checkpoint at {path}")
    torch_device = pick_device(device)
    cfg, info, models = restore(checkpoint_io.load(path), device=torch_device)
    return Adapter(cfg=cfg, info=info, models=models, device=torch_device, path=path)


class Adapter:
    """A trained checkpoint's models in eval mode, taking images as users have them.

    Images: a float tensor (B, C, H, W) in [-1, 1], a uint8 tensor (B, C, H, W) in [0, 255],
    or a list of PIL images; all are resized and converted to the run's size and channels.
    Outputs stay on the adapter's device."""

    def __init__(self, *, cfg, info, models, device, path: Path):
        self.cfg, self.info, self.models = cfg, info, models
        self.device, self.path = device, path
        self.method = cfg.method
        self.image_size, self.channels = info.image_size, info.channels
        self.classes = info.classes  # class names, index i for label i; None for regression
        self.latent_dim = cfg.latent_dim
        self._module = METHODS[cfg.method]  # its interface: pixelda/methods/__init__.py
        self._classifier = self._module.CLASSIFIER

    def __repr__(self) -> str:
        return (
            f"Adapter({self.method}, {self.channels}x{self.image_size}x{self.image_size}, "
            f"{self.path})"
        )

    def prepare(self, images):
        """Any accepted image batch -> float (B, C, S, S) in [-1, 1] on the adapter's device."""
        x = _as_tensor(images, self.channels)
        if x.dim() != 4:
            raise UserError(f"expected images (B, C, H, W), got a tensor of shape {tuple(x.shape)}")
        if x.dtype.is_floating_point:
            return _conform_float(x, self.image_size, self.channels).to(self.device)
        x = match_channels(resize(x, self.image_size), self.channels)
        return to_float(x.to(self.device))

    def adapt(self, x, z=None, variants: int = 1, seed: int | None = None):
        """Source images -> target-style images, float (B, C, S, S) in [-1, 1], or
        (variants, B, C, S, S) when variants > 1. z: (latent_dim,), (B, latent_dim) or
        (variants, B, latent_dim) in [-1, 1]; else drawn U(-1, 1), from `seed` when given
        (same seed, same images) or from torch's global generator."""
        if not hasattr(self._module, "adapt"):
            hint = (
                "; a cgan draws digits from labels: use adapter.generate(labels)"
                if hasattr(self._module, "generate")
                else "; use adapter.classify(x)"
            )
            raise UserError(f"adapt: a {self.method} checkpoint has no image generator{hint}")
        if variants < 1:
            raise UserError(f"adapt: variants must be >= 1, got {variants}")
        x = self.prepare(x)
        z = self._noise(z, seed, (variants, x.size(0), self.latent_dim))
        x_fake = self._module.adapt(
            self.models["generator"], x.repeat(variants, 1, 1, 1), z.flatten(0, 1)
        )
        x_fake = x_fake.view(variants, *x.shape)
        return x_fake[0] if variants == 1 else x_fake

    def generate(self, labels, z=None, seed: int | None = None):
        """cgan: one image per label, float (N, C, S, S) in [-1, 1]; z (N, latent_dim)."""
        if not hasattr(self._module, "generate"):
            raise UserError(
                f"generate: only a cgan checkpoint generates from labels, not a {self.method}"
            )
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < len(self.classes):
            raise UserError(f"generate: labels must lie in 0..{len(self.classes) - 1}")
        z = self._noise(z, seed, (1, len(labels), self.latent_dim))[0]
        return self._module.generate(self.models, labels.to(self.device), z)

    def predict_logits(self, x, batch_size: int = 256):
        """The task classifier's outputs (B, K): class logits, or K regression targets."""
        if self._classifier is None:
            raise UserError(f"a {self.method} checkpoint has no task classifier")
        model = predictor(self.models)
        x = self.prepare(x)
        with torch.no_grad(), eval_mode(model):
            return torch.cat([model(part) for part in x.split(batch_size)])

    def classify(self, x, batch_size: int = 256):
        """The task classifier's predicted class indices, int64 (B,); names in self.classes."""
        if self.classes is None:
            raise UserError(
                "classify: a regression checkpoint predicts numbers; use predict_logits"
            )
        return self.predict_logits(x, batch_size).argmax(1)

    def _noise(self, z, seed, shape):
        """z broadcast to shape (variants, B, latent_dim), or drawn U(-1, 1)."""
        if z is not None and seed is not None:
            raise UserError("pass z or seed, not both")
        if z is None:
            g = None if seed is None else torch.Generator().manual_seed(seed)
            z = uniform_noise(shape, generator=g)
        z = torch.as_tensor(z, dtype=torch.float32)
        try:
            if shape[0] > 1 and z.dim() != 3:  # one z for all variants would repeat one image
                raise RuntimeError
            z = z.expand(shape)
        except RuntimeError:
            raise UserError(
                f"z: expected shape (latent_dim,), (B, latent_dim) or (variants, B, latent_dim) "
                f"for {shape}, got {tuple(z.shape)}"
            ) from None
        return z.to(self.device)


def _as_tensor(images, channels: int):
    """A tensor as given; PIL images (or a list of them) as uint8 (B, C, H, W), each kept at
    its own size until resized."""
    if isinstance(images, torch.Tensor):
        return images
    if isinstance(images, Image.Image):
        images = [images]
    if not isinstance(images, (list, tuple)) or not images:
        raise UserError(
            "expected images as a float tensor in [-1, 1], a uint8 tensor or a list of PIL "
            f"images, got {type(images).__name__}"
        )
    if not all(isinstance(im, Image.Image) for im in images):
        raise UserError("a list of images must hold PIL images only")
    mode = "L" if channels == 1 else "RGB"
    tensors = [torch.from_numpy(np.array(im.convert(mode))) for im in images]
    tensors = [t.unsqueeze(-1) if t.dim() == 2 else t for t in tensors]
    size = max(max(t.shape[:2]) for t in tensors)
    # Different sizes are brought to one before stacking; prepare() resizes to the run's.
    return torch.cat([resize(t.permute(2, 0, 1)[None].contiguous(), size) for t in tensors])


def _conform_float(x, size: int, channels: int):
    """Float images in [-1, 1] resized (bilinear, antialiased) and converted to channels."""
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if lo < -1.001 or hi > 1.001:
        raise UserError(
            f"float images must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]; pass uint8 for 0..255"
        )
    x = x.float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True).clamp(-1, 1)
    c = x.size(1)
    if c == channels:
        return x
    if c == 1:
        return x.expand(-1, channels, -1, -1)
    if c == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True)  # ITU-R 601 luma, as for uint8 images
    raise UserError(f"cannot convert {c}-channel images to {channels} channels")
