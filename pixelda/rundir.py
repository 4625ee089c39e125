"""The run directory: config.json, metrics.jsonl, ckpt.pt, best.pt, samples/, curves.png,
summary.json."""

import json
import os
import shutil
from pathlib import Path

from .errors import UserError
from .fileio import atomic_write_bytes, atomic_write_json, write_error


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.ckpt = self.path / "ckpt.pt"  # the last checkpoint
        self.best = self.path / "best.pt"  # the best validation score's checkpoint
        self.metrics = self.path / "metrics.jsonl"
        self.samples = self.path / "samples"

    def check(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse what would lose work; called before anything is written."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise UserError(f"--out: {p} exists and is not a folder")
        nonempty = p.is_dir() and any(p.iterdir())
        if resume:
            if not self.ckpt.is_file():
                stopped = (
                    " (the run stopped before its first checkpoint: start it again "
                    "with --overwrite)"
                    if (p / "config.json").is_file()
                    else ""
                )
                raise UserError(f"--resume: no checkpoint {self.ckpt} to resume from{stopped}")
        elif nonempty and not overwrite:
            raise UserError(
                f"--out: {p} is not empty; pass --resume to continue it or "
                f"--overwrite to replace it"
            )
        elif nonempty and not (p / "config.json").is_file():
            raise UserError(
                f"--overwrite: refusing to delete {p}: it holds no config.json, so "
                f"it is not a pixelda run directory"
            )

    def create(self, *, overwrite: bool) -> None:
        if overwrite and self.path.is_dir():
            shutil.rmtree(self.path)
        self.samples.mkdir(parents=True, exist_ok=True)

    def log(self, record: dict) -> None:
        """Append one JSON line in a single write, flushed, so the file holds whole lines."""
        line = json.dumps(record, sort_keys=True) + "\n"
        try:
            with open(self.metrics, "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise write_error(self.metrics, e) from None

    def read_metrics(self) -> list[dict]:
        if not self.metrics.is_file():
            return []
        records = []
        for line in self.metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash; nothing after it is trusted
        return records

    def truncate_metrics(self, step: int) -> None:
        """On resume, keep only records up to the checkpoint's step (later ones get redone)."""
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        atomic_write_bytes(self.metrics, text.encode())

    def remove_partial_writes(self) -> None:
        """Delete the temporary files (.NAME.XXXX.tmp) of atomic writes a crash cut short."""
        for folder in (self.path, self.samples):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def write_json(self, name: str, obj) -> None:
        atomic_write_json(self.path / name, obj)
