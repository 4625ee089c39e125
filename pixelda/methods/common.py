"""What the methods that train the task classifier alone share (source-only, target-only) and
what DANN borrows from them: the classifier, its optimizer, its held-out scores, its grid.
Not a method itself: methods import it, never each other."""

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


def classifier_step(m: nn.ModuleDict, opts: dict, x: torch.Tensor, y: torch.Tensor, cfg) -> dict:
    """One update of the classifier on labeled images x (B, C, H, W) and their labels y."""
    task_loss = losses.task_loss(m[CLASSIFIER](x), y)
    optimize(opts[CLASSIFIER], task_loss, cfg.clip_grad_norm)
    return {"task_loss": task_loss.detach()}


def evaluate(m: nn.ModuleDict, data) -> dict:
    """The classifier on the held-out splits (metrics.held_out)."""
    return held_out(m[CLASSIFIER], data)


def grid(m: nn.ModuleDict, fixed) -> list[torch.Tensor]:
    """Columns: source | real target (nothing is generated)."""
    return [fixed.x_src, fixed.x_tgt]
