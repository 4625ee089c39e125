"""Source-only and target-only baselines: the task classifier alone on labeled images.

Source-only trains on labeled source images (the lower bound); target-only on the labeled
target training split (the oracle upper bound; the only method that sees target labels)."""

import torch
from torch import nn

from .. import losses
from ..adversarial import optimize
from ..backbones import task_network
from . import pixelda

CLASSIFIER = "classifier"
evaluate = pixelda.evaluate


def build_network(cfg, info) -> nn.Module:
    """The task network of --backbone (--pretrained: from ImageNet weights)."""
    return task_network(
        cfg.backbone,
        in_channels=info.channels,
        image_size=info.image_size,
        num_outputs=info.num_outputs,
        pretrained=cfg.pretrained,
    )


def build(cfg, info) -> nn.ModuleDict:
    return nn.ModuleDict({"classifier": build_network(cfg, info)})


def optimizer(params, cfg) -> torch.optim.Optimizer:
    """--optimizer: Adam as for every method (pixelda.adam), or SGD with --momentum (Ganin &
    Lempitsky 2015). Its lr is set by the loop before every step (adversarial.learning_rate)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    return pixelda.adam(params, cfg)


def optimizers(m: nn.ModuleDict, cfg) -> dict:
    return {"classifier": optimizer(m["classifier"].parameters(), cfg)}


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
