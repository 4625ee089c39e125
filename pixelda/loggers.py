"""Experiment trackers beside metrics.jsonl: TensorBoard and Weights & Biases, both optional.

The loop calls `log(record)` wherever it appends a record to metrics.jsonl, `image(name,
picture, step)` wherever it writes a sample grid, and `close()` once at the end. metrics.jsonl
and its table copy metrics.csv are always written, whatever --logger says.
"""

import csv
import dataclasses
import importlib
import json
import numbers
import os
from pathlib import Path

from .errors import UserError

LOGGERS = ("tensorboard", "wandb")
# The package each tracker imports, and the extra that installs it.
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def logger_names(spec: str) -> list[str]:
    """'tensorboard,wandb' -> ['tensorboard', 'wandb'] ('' -> []); an unknown name is a UserError
    (metrics.jsonl and metrics.csv need no tracker: they are always written)."""
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UserError(
            f"--logger: unknown logger {unknown[0]!r}; expected a comma-separated list of "
            f"{', '.join(LOGGERS)}"
        )
    return list(dict.fromkeys(names))


def require(spec: str) -> None:
    """Import every chosen tracker's package now, before anything is written: a missing one
    is a one-line UserError with the install command."""
    for name in logger_names(spec):
        try:
            importlib.import_module(PACKAGES[name])
        except ImportError:
            raise UserError(
                f"--logger {name}: the {PACKAGES[name]} package is not installed; "
                f'pip install "pixelda[{name}]"'
            ) from None


def scalars(record: dict) -> dict[str, float]:
    """The record's numbers as 'kind/key' -> value (lists, strings and step/kind left out)."""
    kind = record.get("kind", "train")
    return {
        f"{kind}/{key}": float(value)
        for key, value in record.items()
        if key not in ("kind", "step")
        and isinstance(value, numbers.Real)
        and not isinstance(value, bool)
    }


class TensorBoardLogger:
    """Event files in RUN/tensorboard: `tensorboard --logdir runs/`."""

    def __init__(self, path: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(path / "tensorboard"))

    def log(self, record: dict) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, record["step"])

    def image(self, name: str, picture, step: int) -> None:
        import numpy as np

        self.writer.add_image(name, np.asarray(picture.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run named after the run directory, its files under RUN/wandb. WANDB_MODE=offline
    (read by wandb itself) keeps everything local; `wandb sync` uploads it later."""

    def __init__(self, path: Path, cfg):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "pixelda"),
            name=path.name,
            dir=str(path),
            config=dataclasses.asdict(cfg),
            mode=os.environ.get("WANDB_MODE") or None,
        )

    def log(self, record: dict) -> None:
        self.run.log(scalars(record), step=record["step"])

    def image(self, name: str, picture, step: int) -> None:
        self.run.log({name: self.wandb.Image(picture)}, step=step)

    def close(self) -> None:
        self.run.finish()


def open_loggers(cfg, path: Path) -> list:
    """The trackers cfg.logger names."""
    opened = []
    for name in logger_names(cfg.logger):
        if name == "tensorboard":
            opened.append(TensorBoardLogger(path))
        elif name == "wandb":
            opened.append(WandbLogger(path, cfg))
    return opened


def write_csv(records: list[dict], path: Path) -> None:
    """metrics.jsonl as one table: a column per key seen, blank where a record lacks it."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    first = [c for c in ("kind", "step") if c in columns]
    columns = first + sorted(c for c in columns if c not in first)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for r in records:
            writer.writerow(
                [json.dumps(r[c]) if isinstance(r.get(c), list) else r.get(c, "") for c in columns]
            )
