"""Source-only and target-only baselines: the task classifier alone on labeled images.

Source-only trains on labeled source images (the lower bound); target-only on the labeled
target training split (the oracle upper bound; the only method that sees target labels)."""

import torch
from torch import nn

from .. import losses
from ..adversarial import optimize
from ..models import TaskClassifier
from . import pixelda

CLASSIFIER = "classifier"
evaluate = pixelda.evaluate


def build(cfg, info) -> nn.ModuleDict:
    return nn.ModuleDict(
        {
            "classifier": TaskClassifier(
                in_channels=info.channels, image_size=info.image_size, num_outputs=info.num_outputs
            )
        }
    )


def optimizers(m: nn.ModuleDict, cfg) -> dict:
    return {"classifier": pixelda.adam(m["classifier"].parameters(), cfg)}


def train_step(m: nn.ModuleDict, opts: dict, batch, cfg, progress: float) -> dict:
    if cfg.method == "target-only":
        x, y = batch.x_tgt, batch.y_tgt
    else:
        x, y = batch.x_src, batch.y_src
    task_loss = losses.task_loss(m["classifier"](x), y)
    optimize(opts["classifier"], task_loss, cfg.clip_grad_norm)
    return {"task_loss": task_loss.detach()}


def grid(m: nn.ModuleDict, fixed) -> list[torch.Tensor]:
    """Columns: source | real target (nothing is generated)."""
    return [fixed.x_src, fixed.x_tgt]
