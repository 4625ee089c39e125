"""Labeled images listed in a CSV manifest: `path,label` (classes) or `path,y1,y2,...`
(regression targets), optionally with a last `mask` column (mask image files). Paths are relative to the CSV's folder; a fixed 10% is held out as the
test split, chosen by a hash of each path (as for folders)."""

import csv
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .common import ImageSet
from .folder import ReadOptions, held_out, read_images


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise UserError(f"csv:{path}: no such file")
    try:
        # utf-8-sig: spreadsheet programs often start a CSV with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]
    except (csv.Error, UnicodeDecodeError, OSError) as e:
        raise UserError(f"csv:{path}: not a readable CSV file ({e})") from None
    if len(rows) < 2 or not rows[0] or rows[0][0].strip() != "path":
        raise UserError(f"{path}:1: expected a header 'path,label' or 'path,y1,y2,...' and rows")
    return [h.strip() for h in rows[0]], rows[1:]


def _shown(row: list[str]) -> str:
    """A row as a short one-line repr, for error messages."""
    text = repr(row)
    return text if len(text) <= 120 else text[:117] + "..."


def _row_problem(path: Path, n: int, header: list[str], row: list[str]) -> str | None:
    """Why row n (1-based line) is unusable, or None; an empty mask cell is allowed."""
    required = row[:-1] if header[-1] == "mask" else row
    if len(row) != len(header) or not all(cell.strip() for cell in required):
        return f"{path}:{n}: expected {len(header)} non-empty values, got {_shown(row)}"
    targets = _target_columns(header)
    if targets != ["label"]:
        try:
            values = [float(cell) for cell in row[1 : 1 + len(targets)]]
        except ValueError:
            return f"{path}:{n}: regression targets must be numbers, got {_shown(row[1:])}"
        if not np.isfinite(values).all():
            return f"{path}:{n}: regression targets must be finite numbers"
    return None


def _target_columns(header: list[str]) -> list[str]:
    return header[1:-1] if header[-1] == "mask" else header[1:]


def _targets(header: list[str], rows: list[list[str]]):
    """int64 class indices and class names for a 'label' column, float32 (N, K) otherwise."""
    k = len(_target_columns(header))
    if _target_columns(header) == ["label"]:
        names = sorted({r[1].strip() for r in rows})
        index = {name: i for i, name in enumerate(names)}
        return torch.tensor([index[r[1].strip()] for r in rows], dtype=torch.int64), names
    values = np.array([[float(c) for c in r[1 : 1 + k]] for r in rows], dtype=np.float32)
    return torch.from_numpy(values.reshape(len(rows), k)), None


def load_csv(
    path: Path,
    split: str,
    *,
    size: int,
    opts: ReadOptions | None = None,
    channels: int | None = None,
) -> ImageSet:
    """The train or test split of a CSV manifest ('eval': all rows) as an ImageSet.

    A last column named 'mask' gives each image's mask file (nonzero: foreground).
    `channels` only matters to a streamed split (see folder.read_images)."""
    opts = opts or ReadOptions()
    header, rows = _rows(path)
    if not _target_columns(header):
        raise UserError(f"{path}:1: expected a header 'path,label' or 'path,y1,y2,...' and rows")
    problems = [(n, _row_problem(path, n, header, r)) for n, r in enumerate(rows, 2)]
    bad = {n: why for n, why in problems if why is not None}
    if bad and not opts.skip_bad_files:
        raise UserError(next(iter(bad.values())))
    usable = [i for i in range(len(rows)) if i + 2 not in bad]
    # Class indices from every usable row, so that the train and test splits agree.
    labels, classes = _targets(header, [rows[i] for i in usable]) if usable else (None, None)
    files = [path.parent / r[0].strip() for r in rows]
    keep = np.ones(len(rows), dtype=bool)
    if split != "eval":
        test = held_out(files, path.parent)
        keep = test if split == "test" else ~test
    skipped = [bad[n] for n, k in zip(range(2, len(rows) + 2), keep) if k and n in bad]
    chosen = [j for j, i in enumerate(usable) if keep[i]]
    if not chosen and not skipped:
        raise UserError(f"{path}: no rows left for the {split} split")
    rows, files = [rows[usable[j]] for j in chosen], [files[usable[j]] for j in chosen]
    labels = None if labels is None else labels[torch.tensor(chosen, dtype=torch.int64)]
    mask_files = None
    if header[-1] == "mask":
        mask_files = [path.parent / r[-1].strip() if r[-1].strip() else None for r in rows]
    return read_images(
        files,
        labels,
        name=f"csv-{path.stem}-{split}",
        classes=classes,
        size=size,
        opts=opts,
        where=f"csv:{path}",
        channels=channels,
        mask_files=mask_files,
        problems=skipped,
    )
