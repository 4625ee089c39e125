"""The data of one training run: every split loaded and checked, the validation split carved
out of the target's training split, and the fixed images every sample grid shows."""

import dataclasses
from dataclasses import dataclass

import torch

from .config import TrainConfig
from .data import DataOptions, ImageSet, load, missing_test_reason, split_validation, to_float
from .data.classes import align
from .errors import UserError
from .helpers import uniform_noise


@dataclass
class RunData:
    """Every split of a run. target_train is the unlabeled training pool (labeled only for
    target-only); target_val is carved out of the target's training split (--val-size) and
    never trained on; target_test is None where the target has no test split."""

    source_train: ImageSet
    source_test: ImageSet | None
    target_train: ImageSet | None
    target_test: ImageSet | None
    options: DataOptions | None = None  # where evaluation may cache what it builds (cgan judge)
    target_val: ImageSet | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # one line each, for the console


@dataclass
class Fixed:
    """The images and noise every sample grid of a run shows."""

    x_src: torch.Tensor
    y_src: torch.Tensor | None
    z: list[torch.Tensor]
    x_tgt: torch.Tensor | None


def load_data(cfg: TrainConfig) -> RunData:
    """Every split a run needs, in one shape; target training labels dropped unless target-only."""
    opts = DataOptions.from_config(cfg)
    if cfg.method == "cgan":
        source_train = _load_source(cfg, opts, channels=None)
        source_test = load(cfg.source, "test", opts, channels=source_train.channels)
        return RunData(source_train, source_test, None, None, opts)
    target_train = load(cfg.target, "train", opts)
    source_train = _load_source(cfg, opts, channels=target_train.channels)
    channels = source_train.channels
    source_test = load(cfg.source, "test", opts, channels=channels)
    data = RunData(source_train, source_test, None, None, opts)
    if target_train.labels is not None:
        target_train, data.target_val = split_validation(target_train, cfg.val_size)
    else:
        data.notes.append(f"target {cfg.target} is unlabeled: no validation split")
    if cfg.method == "target-only" and target_train.labels is None:
        raise UserError(f"--target: {cfg.target} has no labels; target-only needs them")
    data.target_train = target_train if cfg.method == "target-only" else target_train.unlabeled()
    spec, split = (cfg.target_test, "eval") if cfg.target_test else (cfg.target, "test")
    data.target_test = load(spec, split, opts, channels=channels)
    if data.target_test is None:
        data.notes.append(f"no target test split: {missing_test_reason(spec, opts)}")
    check_classes(data)
    return data


def _load_source(cfg: TrainConfig, opts: DataOptions, *, channels: int | None) -> ImageSet:
    """The labeled source training split; its labels must suit --task."""
    source_train = load(cfg.source, "train", opts, channels=channels)
    if source_train.labels is None:
        raise UserError(
            f"--source: {cfg.source} has no labels (a labeled source needs class sub-folders)"
        )
    regression = source_train.labels.dtype.is_floating_point
    if regression and cfg.task != "regression":
        raise UserError(f"--source: {cfg.source} has numeric targets; pass --task regression")
    if not regression and cfg.task == "regression":
        raise UserError(
            f"--task regression: {cfg.source} has class labels, not numeric "
            f"targets (use a csv:PATH manifest with columns path,y1,y2,...)"
        )
    return source_train


def check_classes(data: RunData) -> None:
    """Number every labeled split by the source's class names, matched by name (a split may
    hold only some of them, in any order); a name the source lacks is a UserError."""
    names = data.source_train.classes
    data.source_test = align(data.source_test, names, "source test data")
    data.target_val = align(data.target_val, names, "target validation data")
    data.target_test = align(data.target_test, names, "target test data")
    data.target_train = align(data.target_train, names, "--target training data")


def fixed_samples(data: RunData, cfg, device) -> Fixed:
    """One source image per class (up to 10), three fixed noise vectors, and target images
    spread evenly over the target set (a set sorted by class still shows several classes)."""
    src = data.source_test if data.source_test is not None else data.source_train
    idx = [
        int((src.labels == c).nonzero()[0])
        for c in range(src.num_classes or 0)
        if (src.labels == c).any()
    ][:10] or list(range(min(10, len(src))))
    splits = (data.target_val, data.target_test, data.target_train)
    tgt = next((t for t in splits if t is not None), None)
    g = torch.Generator().manual_seed(cfg.seed)
    z = [uniform_noise((len(idx), cfg.latent_dim), generator=g, device=device) for _ in range(3)]
    x_tgt = None
    if tgt is not None:  # evenly spaced; repeats when the target has fewer images than rows
        spread = torch.linspace(0, len(tgt) - 1, len(idx)).round().long()
        x_tgt = to_float(tgt.subset(spread).images).to(device)
    return Fixed(to_float(src.images[idx]).to(device), src.labels[idx].to(device), z, x_tgt)
