"""The run directory: config.json, metrics.jsonl, ckpt.pt, best.pt, samples/, curves.png,
summary.json, and .pixelda-run.json, the marker that makes it a folder --overwrite may delete."""

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError
from .fileio import atomic_write_bytes, atomic_write_json, write_error
from .ownership import check_out_path, check_replaceable, write_marker


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.ckpt = self.path / "ckpt.pt"  # the last checkpoint
        self.best = self.path / "best.pt"  # the best validation score's checkpoint
        self.metrics = self.path / "metrics.jsonl"
        self.samples = self.path / "samples"
        self.created = False  # by this process, in create()

    def check(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse what would lose work; called before anything is written."""
        p = self.path
        check_out_path(p)
        if resume:
            if not self.ckpt.is_file():
                stopped = (
                    " (the run stopped before its first checkpoint: start it again "
                    "with --overwrite)"
                    if (p / "config.json").is_file()
                    else ""
                )
                raise UserError(f"--resume: no checkpoint {self.ckpt} to resume from{stopped}")
        else:
            check_replaceable(p, "run", overwrite=overwrite, hint="--resume to continue it or ")

    def create(self, *, overwrite: bool) -> None:
        if overwrite and self.path.is_dir():
            shutil.rmtree(self.path)
        try:
            self.samples.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.samples, e) from None
        write_marker(self.path, "run")
        self.created = True

    @contextmanager
    def removed_unless_started(self, *, resume: bool):
        """On any failure (Ctrl-C included) before the run's first checkpoint, remove what this
        process wrote in the run folder: a run without a checkpoint cannot be resumed, and a
        half-made folder would only be refused by the next run."""
        existed = self.path.is_dir()
        try:
            yield
        except BaseException:
            if self.created and not resume and not self.ckpt.exists():
                shutil.rmtree(self.path, ignore_errors=True)
                if existed:  # the user's (empty) folder stays
                    self.path.mkdir(exist_ok=True)
            raise

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
