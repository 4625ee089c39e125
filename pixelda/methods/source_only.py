"""Source-only baseline: the task classifier alone, trained on labeled source images (the
lower bound every adaptation method must beat)."""

from torch import nn

from .common import CLASSIFIER, build, classifier_step, evaluate, grid, optimizers

__all__ = ["CLASSIFIER", "build", "evaluate", "grid", "optimizers", "train_step"]


def train_step(m: nn.ModuleDict, opts: dict, batch, cfg, progress: float) -> dict:
    """One update on a labeled source batch."""
    return classifier_step(m, opts, batch.x_src, batch.y_src, cfg)
