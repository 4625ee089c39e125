"""Held-out evaluation: accuracy of a classifier in eval mode without gradients.

Usage: python -m pixelda.evaluate --checkpoint RUN/best.pt [--data SPEC] [--split auto|test|val]
"""

if __name__ == "__main__":  # Ctrl-C while torch loads (seconds): one line and exit 130
    from .errors import exit_130_on_ctrl_c

    exit_130_on_ctrl_c()

import contextlib
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .data import ImageSet, to_float
from .errors import UserError, cli


@contextlib.contextmanager
def eval_mode(*modules: nn.Module):
    """modules.eval() inside, their previous train/eval mode restored after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, *, device, batch_size: int = 1000):
    """Model outputs for uint8 (N, C, H, W) images, in batches, in eval mode -> (N, K) on CPU."""
    device = next(model.parameters()).device if device is None else device
    with eval_mode(model):
        outs = [model(to_float(part.to(device))).float().cpu() for part in images.split(batch_size)]
    return torch.cat(outs)


def score(model: nn.Module, data: ImageSet, *, device=None) -> dict:
    """{"acc", "n"} for class labels; {"rmse", "rmse_per_output", "n"} for regression targets.

    Under torchrun each rank predicts its share of the images and the sums are added up over
    ranks, so every rank gets the figures of the whole split."""
    part = distributed.shard(len(data)) if distributed.world_size() > 1 else slice(None)
    outputs, labels = predict(model, data.images[part], device=device), data.labels[part]
    if labels.dtype.is_floating_point:
        squared = (outputs - labels).double().pow(2).sum(0)  # (K,)
        total = distributed.sum_all(torch.cat([squared, torch.tensor([len(labels)])]))
        per_output = (total[:-1] / total[-1]).sqrt()
        return {
            "rmse": per_output.pow(2).mean().sqrt().item(),
            "rmse_per_output": per_output.tolist(),
            "n": len(data),
        }
    correct = (outputs.argmax(1) == labels).sum()
    total = distributed.sum_all(torch.stack([correct, torch.tensor(len(labels))]))
    return {"acc": (total[0] / total[1]).item(), "n": len(data)}


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
    from .data import load, missing_test_reason, split_validation

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


@cli
def main(argv: list[str] | None = None) -> dict:
    from .checkpoint import load as load_checkpoint
    from .config import build_parser
    from .data import DataOptions
    from .data.classes import align, counts
    from .fileio import atomic_write_json
    from .methods import METHODS, restore

    parser = build_parser(
        EvaluateConfig,
        prog="python -m pixelda.evaluate",
        description="Score a checkpoint's classifier on labeled data.",
    )
    cfg = EvaluateConfig(**vars(parser.parse_args(argv)))
    if not cfg.checkpoint:
        raise UserError("--checkpoint: required")
    if cfg.out and Path(cfg.out).exists():
        raise UserError(f"--out: {cfg.out} exists; choose a new file")
    run_cfg, info, models = restore(load_checkpoint(cfg.checkpoint), device=cfg.device)
    # The run's own data settings (geometry included: what the classifier was trained on).
    opts = replace(
        DataOptions.from_config(run_cfg),
        data_root=cfg.data_root or run_cfg.data_root,
        photos=cfg.photos or run_cfg.photos,
        image_size=info.image_size,
        download=False,
    )
    spec, data = labeled_split(cfg, run_cfg, opts, info.channels)
    if data.labels is None:
        raise UserError(f"--data: {spec} has no labels to score against")
    # By name: a folder with only some classes, or numbered otherwise, meets the right outputs.
    data = align(data, info.classes, f"--data {spec}")
    result = {
        "checkpoint": cfg.checkpoint,
        "data": spec,
        "split": data.name,
        **score(models[METHODS[run_cfg.method].CLASSIFIER], data, device=cfg.device),
    }
    per_class = counts(data)
    if per_class:
        result["counts_per_class"] = per_class
    if cfg.out:
        atomic_write_json(cfg.out, result)
    if "acc" in result:
        print(
            f"{spec} ({data.name}, {result['n']} images): accuracy {result['acc']:.2%}",
            file=sys.stderr,
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
