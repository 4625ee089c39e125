"""DANN (Ganin et al. 2016): the task tower's features feed the label predictor and, through a
gradient reversal layer, a domain classifier; one update makes the features domain-invariant.

Optimiser: --optimizer and --lr-schedule, as for the other baselines (helpers.classifier_optimizer);
`--preset paper` sets the paper's SGD with momentum and annealed rate (pixelda/recipes.py).
The task network is --backbone's; the domain classifier reads its features.
"""

import itertools

import torch
from torch import nn

from .. import losses
from ..grl import dann_lambda, grad_reverse
from ..helpers import classifier_optimizer, optimize, task_network_for
from ..metrics import held_out, predict
from ..models import DomainClassifier
from .common import CLASSIFIER, grid

__all__ = ["CLASSIFIER", "build", "evaluate", "grid", "optimizers", "train_step"]


def build(cfg, info) -> nn.ModuleDict:
    network = task_network_for(cfg, info)
    # Ganin et al. 2016, Sec. 5.2.2: x -> 100 -> 1 behind the MNIST tower, x -> 1024 -> 1024 -> 1
    # behind their larger networks (here the ResNets).
    tower = cfg.backbone == "tower"
    domain = DomainClassifier(
        in_features=network.feature_dim, hidden=100 if tower else 1024, layers=1 if tower else 2
    )
    return nn.ModuleDict({"classifier": network, "domain_classifier": domain})


def optimizers(m: nn.ModuleDict, cfg) -> dict:
    # One optimizer: thanks to the reversal layer, features, label predictor and domain
    # classifier all descend one summed loss in a single step.
    params = itertools.chain(m["classifier"].parameters(), m["domain_classifier"].parameters())
    return {"dann": classifier_optimizer(params, cfg)}


def train_step(m: nn.ModuleDict, opts: dict, batch, cfg, progress: float) -> dict:
    """Label loss on source images; domain loss on source and (unlabeled) target images."""
    lam = cfg.dann_weight * dann_lambda(progress)
    n_src = batch.x_src.size(0)
    # One pass over both domains (one call, as DDP wants). The tower has no batch norm, so it
    # equals two separate passes; a ResNet's batch statistics cover both domains, as in common
    # DANN implementations (e.g. TLlib). The target rows' logits are not used.
    logits, feats = m["classifier"](torch.cat([batch.x_src, batch.x_tgt]), with_features=True)
    task_loss = losses.task_loss(logits[:n_src], batch.y_src)
    domain_logits = m["domain_classifier"](grad_reverse(feats, lam))  # (2B,)
    domain_loss = losses.domain_loss(domain_logits[:n_src], domain_logits[n_src:])
    optimize(opts["dann"], task_loss + domain_loss, cfg.clip_grad_norm)
    return {
        "task_loss": task_loss.detach(),
        "domain_loss": domain_loss.detach(),
        "lambda": torch.tensor(lam, dtype=torch.float64),
    }


def domain_accuracy(m: nn.ModuleDict, source, target) -> float:
    """Balanced accuracy of the domain classifier on held-out images: the mean of its accuracy
    on source (label 0) and on target (label 1) images, so 0.5 is chance whatever the sizes."""
    tower = nn.Sequential(m["classifier"].features, m["domain_classifier"])
    src_acc = (predict(tower, source.images, device=None) < 0).float().mean().item()
    tgt_acc = (predict(tower, target.images, device=None) > 0).float().mean().item()
    return (src_acc + tgt_acc) / 2


def evaluate(m: nn.ModuleDict, data) -> dict:
    """The task classifier on held-out splits, plus `domain_acc` on the source test split
    against the target validation split (images neither the features nor the domain
    classifier trained on)."""
    out = held_out(m[CLASSIFIER], data)
    if data.source_test is not None and data.target_val is not None:
        out["domain_acc"] = domain_accuracy(m, data.source_test, data.target_val)
    return out
