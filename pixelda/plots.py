"""Pictures: sample grids (columns of images) and loss/accuracy curves (matplotlib)."""

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid

from .fileio import atomic_write_bytes
from .validators import HIGHER_IS_BETTER

MIN_CELL = 64  # small images are enlarged (nearest) so a grid is readable


def grid_image(columns: list[torch.Tensor], pad: int = 2) -> Image.Image:
    """Columns of images, each (N, C, H, W) in [-1, 1], side by side on white; rows line up."""
    cols = [c.detach().float().cpu().clamp(-1, 1) for c in columns]
    cols = [c.expand(-1, 3, -1, -1) if c.size(1) == 1 else c for c in cols]
    h, w = cols[0].shape[-2:]
    scale = max(1, -(-MIN_CELL // max(h, w)))
    rows = torch.stack(cols, dim=1).flatten(0, 1)  # row-major: row i holds image i of each column
    if scale > 1:
        rows = F.interpolate(rows, scale_factor=scale, mode="nearest")
    canvas = make_grid((rows + 1) / 2, nrow=len(cols), padding=pad, pad_value=1.0)
    array = (canvas.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(array)


def save_curves(records: list[dict], path: Path) -> None:
    """Losses (left) and held-out accuracies (right) against steps, from metrics.jsonl records;
    below them, when the run logs label-free validators, one small panel per validator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in records if r.get("kind") == "eval"]
    trains = [r for r in records if r.get("kind") == "train"]
    loss_keys = sorted({k for r in trains for k in r if k.endswith("_loss")})
    eval_keys = sorted({k for r in evals for k in r if k.endswith("_acc")})
    val_keys = sorted({k for r in evals for k in r if k.startswith("validator_")})
    n = max(len(val_keys), 1)
    fig = plt.figure(figsize=(11, 7 if val_keys else 4))
    grid = fig.add_gridspec(2 if val_keys else 1, 2 * n)
    ax_l, ax_a = fig.add_subplot(grid[0, :n]), fig.add_subplot(grid[0, n:])
    for key in loss_keys:
        ax_l.plot(*zip(*[(r["step"], r[key]) for r in trains if key in r]), label=key)
    for key in eval_keys:
        ax_a.plot(*zip(*[(r["step"], r[key]) for r in evals if key in r]), marker="o", label=key)
    ax_l.set(xlabel="step", ylabel="loss", title="training losses")
    ax_a.set(xlabel="step", ylabel="accuracy", title="held-out accuracy", ylim=(0, 1))
    for ax in (ax_l, ax_a):
        if ax.lines:
            ax.legend(fontsize=8)
    for i, key in enumerate(val_keys):
        ax = fig.add_subplot(grid[1, 2 * i : 2 * i + 2])
        ax.plot(*zip(*[(r["step"], r[key]) for r in evals if key in r]), marker="o")
        name = key.removeprefix("validator_")
        way = {True: "higher", False: "lower"}.get(HIGHER_IS_BETTER.get(name), "?")
        ax.set_title(f"{name} ({way} better)", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
