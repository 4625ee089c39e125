"""Target-only baseline: the task classifier alone, trained on the labeled target training
split (the oracle upper bound; the only method that sees target labels)."""

from torch import nn

from .common import CLASSIFIER, build, classifier_step, evaluate, grid, optimizers

__all__ = ["CLASSIFIER", "build", "evaluate", "grid", "optimizers", "train_step"]


def train_step(m: nn.ModuleDict, opts: dict, batch, cfg, progress: float) -> dict:
    """One update on a labeled target batch (the target's training split minus validation)."""
    return classifier_step(m, opts, batch.x_tgt, batch.y_tgt, cfg)
