"""Held-out scores of a model on a labeled ImageSet: accuracy, or RMSE for regression, computed
in eval mode without gradients (and summed over ranks under torchrun)."""

import torch
from torch import nn

from . import distributed
from .data import ImageSet, to_float
from .helpers import eval_mode


# Images per forward pass when scoring: on a CPU a batch whose feature maps stay in the caches
# (a 1,000-image batch was ~1.5x slower per image for the 32x32 task network, 1 thread; python
# benchmarks/eval_speed.py), on an accelerator a large one.
CPU_EVAL_BATCH = 128
ACCELERATOR_EVAL_BATCH = 1000


def eval_batch(device) -> int:
    """Images per forward pass for scoring on `device`."""
    return CPU_EVAL_BATCH if torch.device(device).type == "cpu" else ACCELERATOR_EVAL_BATCH


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, *, device, batch_size: int | None = None):
    """Model outputs for uint8 (N, C, H, W) images, in batches (of eval_batch(device) unless
    given), in eval mode -> (N, K) on CPU."""
    device = next(model.parameters()).device if device is None else device
    batch_size = batch_size or eval_batch(device)
    with eval_mode(model):
        outs = [model(to_float(part.to(device))).float().cpu() for part in images.split(batch_size)]
    return torch.cat(outs)


def score(model: nn.Module, data: ImageSet, *, device=None, per_class: bool = False) -> dict:
    """{"acc", "n"} for class labels, with "acc_per_class" (class_accuracy, from the same
    predictions) when `per_class` and the classes have names; {"rmse", "rmse_per_output", "n"}
    for regression targets.

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
    predicted = outputs.argmax(1)
    correct = (predicted == labels).sum()
    total = distributed.sum_all(torch.stack([correct, torch.tensor(len(labels))]))
    result = {"acc": (total[0] / total[1]).item(), "n": len(data)}
    if per_class and data.classes:
        result["acc_per_class"] = class_accuracy(predicted, labels, data.classes)
    return result


def class_accuracy(predicted: torch.Tensor, labels: torch.Tensor, classes) -> dict[str, float]:
    """Accuracy on each class's images (predicted and labels: class indices), by name in class
    order, classes without images left out; summed over ranks under torchrun."""
    k = len(classes)
    total = distributed.sum_all(torch.bincount(labels, minlength=k))
    hits = distributed.sum_all(torch.bincount(labels[predicted == labels], minlength=k))
    return {c: hits[i].item() / total[i].item() for i, c in enumerate(classes) if total[i]}


def held_out(model: nn.Module, data, *, source: bool = True) -> dict:
    """`model` on the target's validation split, and on the target and (with `source`) source
    test splits where they exist (a run's RunData): {"target_val_acc", "target_test_acc",
    "source_test_acc"} (or *_rmse, *_rmse_per_output for regression)."""
    out = {}
    splits = (
        ("target_val", data.target_val),
        ("target_test", data.target_test),
        ("source_test", data.source_test if source else None),
    )
    for prefix, split in splits:
        if split is not None and split.labels is not None:
            out.update({f"{prefix}_{k}": v for k, v in score(model, split).items() if k != "n"})
    return out
