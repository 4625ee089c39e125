"""Labeled images listed in a CSV manifest: `path,label` (classes) or `path,y1,y2,...`
(regression targets), optionally with a last `mask` column (mask image files). Paths are relative to the CSV's folder; a fixed 10% is held out as the
test split, chosen by a hash of each path (as for folders)."""

import csv
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .classes import sorted_names
from .common import ImageSet
from .folder import ReadOptions, held_out, read_images

# With --skip-bad-files, this many bad rows before the first good one mean the file is not a
# manifest at all: refuse it then rather than read (maybe millions of) junk rows first.
BAD_ROWS_BEFORE_ANY_GOOD = 1000
HEADER_HELP = "expected a header 'path,label' or 'path,y1,y2,...' and rows"


def _rows(path: Path, *, skip_bad: bool) -> tuple[list[str], list[list[str]], dict[int, str]]:
    """Header, every non-blank row (1-based line n is rows[n - 2]) and {line: problem}.

    Rows are checked as they are read: a bad row is a UserError at once, unless skip_bad."""
    if not path.is_file():
        raise UserError(f"csv:{path}: no such file")
    header, rows, bad = None, [], {}
    try:
        # utf-8-sig: spreadsheet programs often start a CSV with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f):
                if not any(cell.strip() for cell in row):
                    continue
                if header is None:
                    header = _header(path, row)
                    continue
                n = len(rows) + 2
                rows.append(row)
                why = _row_problem(path, n, header, row)
                if why is not None:
                    if not skip_bad:
                        raise UserError(why)
                    bad[n] = why
                    if len(bad) >= BAD_ROWS_BEFORE_ANY_GOOD and len(bad) == len(rows):
                        first = next(iter(bad.values()))
                        raise UserError(f"{first} (and so are the {len(bad) - 1} rows after it)")
    except (csv.Error, UnicodeDecodeError, OSError) as e:
        raise UserError(f"csv:{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise UserError(f"{path}:1: {HEADER_HELP}")
    return header, rows, bad


def _header(path: Path, row: list[str]) -> list[str]:
    header = [h.strip() for h in row]
    if header[0] != "path" or not _target_columns(header):
        raise UserError(f"{path}:1: {HEADER_HELP}")
    return header


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
        names = sorted_names({r[1].strip() for r in rows})
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
    header, rows, bad = _rows(path, skip_bad=opts.skip_bad_files)
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
