"""Held-out evaluation: accuracy of a classifier in eval mode without gradients.

Usage: python -m pixelda.evaluate --checkpoint RUN/ckpt.pt [--data SPEC] [--split test]
"""

import contextlib
import json
import sys
from dataclasses import dataclass

import torch
from torch import nn

from .data import ImageSet, to_float


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
    """{"acc", "n"} for class labels; {"rmse", "rmse_per_output", "n"} for regression targets."""
    outputs = predict(model, data.images, device=device)
    if data.labels.dtype.is_floating_point:
        per_output = (outputs - data.labels).pow(2).mean(0).sqrt()
        return {"rmse": per_output.pow(2).mean().sqrt().item(),
                "rmse_per_output": per_output.tolist(), "n": len(data)}
    return {"acc": (outputs.argmax(1) == data.labels).float().mean().item(), "n": len(data)}


def accuracy(model: nn.Module, data: ImageSet, *, device=None) -> float:
    return score(model, data, device=device)["acc"]
