"""Labeled images listed in a CSV manifest: `path,label` (classes) or `path,y1,y2,...`
(regression targets). Paths are relative to the CSV's folder; a fixed 10% is held out as the
test split, chosen by a hash of each path (as for folders)."""

import csv
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .common import ImageSet, from_numpy_hwc
from .folder import decode, folder_channels, held_out


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


def _targets(path: Path, header: list[str], rows: list[list[str]]):
    """int64 class indices and class names for a 'label' column, float32 (N, K) otherwise."""
    for n, row in enumerate(rows, 2):
        if len(row) != len(header) or not all(cell.strip() for cell in row):
            raise UserError(
                f"{path}:{n}: expected {len(header)} non-empty values, got {_shown(row)}"
            )
    if header[1:] == ["label"]:
        names = sorted({r[1].strip() for r in rows})
        index = {name: i for i, name in enumerate(names)}
        return torch.tensor([index[r[1].strip()] for r in rows], dtype=torch.int64), names
    values = np.empty((len(rows), len(header) - 1), dtype=np.float32)
    for n, row in enumerate(rows, 2):
        try:
            values[n - 2] = [float(cell) for cell in row[1:]]
        except ValueError:
            raise UserError(
                f"{path}:{n}: regression targets must be numbers, got {_shown(row[1:])}"
            ) from None
    if not np.isfinite(values).all():
        raise UserError(f"{path}: regression targets must be finite numbers")
    return torch.from_numpy(values), None


def load_csv(path: Path, split: str, *, size: int) -> ImageSet:
    """The train or test split of a CSV manifest ('eval': all rows) as an ImageSet."""
    header, rows = _rows(path)
    labels, classes = _targets(path, header, rows)
    files = [path.parent / r[0].strip() for r in rows]
    if split != "eval":
        test = held_out(files, path.parent)
        keep = torch.from_numpy(test if split == "test" else ~test)
        files = [f for f, k in zip(files, keep.tolist()) if k]
        labels = labels[keep]
    if not files:
        raise UserError(f"{path}: no rows left for the {split} split")
    channels = folder_channels(files[0])
    images = np.stack([decode(f, size, channels) for f in files])
    return ImageSet(
        from_numpy_hwc(images), labels, name=f"csv-{path.stem}-{split}", classes=classes
    )
