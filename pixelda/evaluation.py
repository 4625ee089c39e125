"""Scoring a saved checkpoint's classifier on labeled data: a test split, or the run's own
validation split carved again exactly as the run carved it (python -m pixelda.evaluate)."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import load as load_checkpoint
from .data import DataOptions, ImageSet, load, missing_test_reason, split_validation
from .data.classes import align, counts
from .errors import UserError
from .fileio import atomic_write_json
from .helpers import predictor
from .methods import METHODS, restore
from .metrics import score

SPLITS = ("auto", "test", "val")


@dataclass
class EvaluateConfig:
    checkpoint: str = field(
        default="", metadata={"help": "a pixelda checkpoint (RUN/ckpt.pt or RUN/best.pt)"}
    )
    data: str = field(
        default="",
        metadata={
            "help": "labeled data to score, as for --target: mnistm, mnist, usps, folder:PATH "
            "(empty: the run's target)"
        },
    )
    split: str = field(
        default="auto",
        metadata={
            "help": "test: the data's test split (all of a folder without one); val: the run's "
            "validation split, carved from the training split as the run carved it; auto: test "
            "where there is one, else val",
            "choices": SPLITS,
        },
    )
    data_root: str = field(default="", metadata={"help": "data root (empty: the run's)"})
    photos: str = field(default="", metadata={"help": "MNIST-M photos (empty: the run's)"})
    out: str = field(default="", metadata={"help": "also write the result to this JSON file"})
    device: str = field(
        default="cpu", metadata={"help": "cpu, cuda or mps", "choices": ("cpu", "cuda", "mps")}
    )


def labeled_split(cfg: EvaluateConfig, run_cfg, opts, channels: int) -> tuple[str, ImageSet]:
    """(spec, images) to score: the test split, or the run's validation split (--split)."""
    if cfg.split != "val":
        spec = cfg.data or run_cfg.target_test or run_cfg.target
        data = load(spec, "eval", opts, channels=channels)
        if data is not None:
            return spec, data
        reason = missing_test_reason(spec, opts)
        if cfg.split == "test":
            raise UserError(f"--split test: {reason}")
        print(f"note: {reason}; scoring the validation split", file=sys.stderr)
    spec = cfg.data or run_cfg.target
    full = load(spec, "train", opts, channels=channels)
    if full is None or full.labels is None:
        raise UserError(f"--split val: {spec} has no labeled training split to carve it from")
    return spec, split_validation(full, run_cfg.val_size)[1]


def evaluate_checkpoint(cfg: EvaluateConfig) -> dict:
    """Score cfg.checkpoint's classifier -> {"checkpoint", "data", "split", "acc" (or "rmse",
    ...), "n", "counts_per_class", "acc_per_class"}; also written to cfg.out when given."""
    if not cfg.checkpoint:
        raise UserError("--checkpoint: required")
    if cfg.out and Path(cfg.out).exists():
        raise UserError(f"--out: {cfg.out} exists; choose a new file")
    run_cfg, info, models = restore(load_checkpoint(cfg.checkpoint), device=cfg.device)
    classifier = METHODS[run_cfg.method].CLASSIFIER
    if classifier is None:
        raise UserError(f"--checkpoint: a {run_cfg.method} run has no classifier to score")
    opts = DataOptions.of_run(
        run_cfg, info.image_size, data_root=cfg.data_root, photos=cfg.photos
    )
    spec, data = labeled_split(cfg, run_cfg, opts, info.channels)
    if data.labels is None:
        raise UserError(f"--data: {spec} has no labels to score against")
    # By name: a folder with only some classes, or numbered otherwise, meets the right outputs.
    data = align(data, info.classes, f"--data {spec}")
    per_class = counts(data)
    result = {
        "checkpoint": str(cfg.checkpoint),
        "data": spec,
        "split": data.name,
        **score(predictor(models), data, device=cfg.device, per_class=bool(per_class)),
    }
    if per_class:
        result["counts_per_class"] = per_class
    if cfg.out:
        atomic_write_json(cfg.out, result)
    return result
