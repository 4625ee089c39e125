"""Source-only baseline: the task classifier alone, trained on labeled source images (the
lower bound every adaptation method must beat)."""

import torch
from torch import nn

from .. import losses
from ..helpers import classifier_optimizer, optimize, task_network_for
from ..metrics import held_out

CLASSIFIER = "classifier"


def build(cfg, info) -> nn.ModuleDict:
    return nn.ModuleDict({CLASSIFIER: task_network_for(cfg, info)})


def optimizers(m: nn.ModuleDict, cfg) -> dict:
    return {CLASSIFIER: classifier_optimizer(m[CLASSIFIER].parameters(), cfg)}


def train_step(m: nn.ModuleDict, opts: dict, batch, cfg, progress: float) -> dict:
    """One update on a labeled source batch."""
    task_loss = losses.task_loss(m[CLASSIFIER](batch.x_src), batch.y_src)
    optimize(opts[CLASSIFIER], task_loss, cfg.clip_grad_norm)
    return {"task_loss": task_loss.detach()}


def evaluate(m: nn.ModuleDict, data) -> dict:
    """The classifier on the held-out splits (metrics.held_out)."""
    return held_out(m[CLASSIFIER], data)


def grid(m: nn.ModuleDict, fixed) -> list[torch.Tensor]:
    """Columns: source | real target (nothing is generated)."""
    return [fixed.x_src, fixed.x_tgt]
