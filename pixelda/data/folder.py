"""Images from a folder: class sub-folders (torchvision's ImageFolder layout) or a flat folder.

A folder with train/ and test/ sub-folders gives those splits; a labeled folder without them
holds out a fixed 10% as its test split; a flat folder is unlabeled and all of it is train.
Alpha channels (or a background colour) give foreground masks; ReadOptions says how.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from . import stream
from .classes import name_order
from .common import ImageSet, from_numpy_hwc
from .decode import (  # noqa: F401 (decode, fit and folder_channels: imported from here too)
    RESIZE_MODES,
    ReadOptions,
    decode,
    fit,
    folder_channels,
    majority_channels,
    read,
)
from .photos import IMAGE_SUFFIXES

TEST_FRACTION = 0.1


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan(folder: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """Files, labels and class names of a folder (labels None when it is flat); classes are
    numbered in name order, numeric names by value ("2" before "10")."""
    if not folder.is_dir():
        raise UserError(f"folder:{folder}: not a folder")
    class_dirs = sorted(
        (d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: name_order(d.name),
    )
    if class_dirs:
        files, labels = [], []
        for label, d in enumerate(class_dirs):
            found = _images_in(d)
            files += found
            labels += [label] * len(found)
        classes = [d.name for d in class_dirs]
    else:
        files, labels, classes = _images_in(folder), None, None
    if not files:
        raise UserError(f"folder:{folder}: no image files (.png, .jpg, ...) found")
    return files, labels, classes


def decoded(
    files: list[Path],
    *,
    size: int,
    opts: ReadOptions,
    problems: list[str],
    mask_files: list[Path | None] | None = None,
    channels: int | None = None,
):
    """(index, image (S, S, C), mask (S, S), whether it had one) for each readable file, in
    order; C is `channels`, by default the majority's (majority_channels). An unreadable file
    is a UserError, or with opts.skip_bad_files appended to `problems` and skipped."""
    channels = channels or majority_channels(files) or 3
    for i, f in enumerate(files):
        try:
            mask_path = None if mask_files is None else mask_files[i]
            image, mask, has_mask = read(f, size, channels, opts, mask_path)
        except UserError as e:
            if not opts.skip_bad_files:
                raise
            problems.append(str(e))
            continue
        yield i, image, mask, has_mask


def report_skipped(problems: list[str], bad_rows: int, where: str) -> None:
    """One warning on stderr counting the bad rows (the first `bad_rows` problems) and the
    unreadable files, if there were any."""
    if problems:
        counts = [(bad_rows, "bad row"), (len(problems) - bad_rows, "unreadable file")]
        what = " and ".join(f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in counts if n)
        print(f"warning: skipped {what} in {where} (first: {problems[0]})", file=sys.stderr)


def read_files(
    files: list[Path],
    *,
    size: int,
    opts: ReadOptions,
    where: str,
    mask_files: list[Path | None] | None = None,
    problems: list[str] | None = None,
    channels: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
    """Images (N, S, S, C), masks (N, S, S) or None when no file had one, and the indices of
    the files read. An unreadable file is a UserError, or with opts.skip_bad_files skipped and
    counted (with `problems` found before, e.g. bad CSV rows) in one warning on stderr."""
    problems = list(problems or [])
    bad_rows = len(problems)
    images, masks, kept, found = [], [], [], False
    for i, image, mask, has_mask in decoded(
        files, size=size, opts=opts, problems=problems, mask_files=mask_files, channels=channels
    ):
        images.append(image)
        masks.append(mask)
        kept.append(i)
        found = found or has_mask
    report_skipped(problems, bad_rows, where)
    if not images:
        raise UserError(f"{where}: no readable images left")
    return np.stack(images), np.stack(masks) if found else None, kept


def read_images(
    files: list[Path],
    labels: torch.Tensor | None,
    *,
    name: str,
    classes: list[str] | None,
    size: int,
    opts: ReadOptions,
    where: str,
    channels: int | None = None,
    mask_files: list[Path | None] | None = None,
    problems: list[str] | None = None,
) -> ImageSet:
    """The readable files as an ImageSet, with their rows of `labels` (indexed like files).

    Decoded into memory; or, when opts.stream chooses it, memory-mapped from the stream cache
    (decoded into it first if it has no entry for these files), converted to `channels`."""
    native = majority_channels(files, where=None if channels else where)
    if channels == native:
        channels = None  # nothing to convert, and one cache entry whoever asks
    nbytes = len(files) * ((channels or native or 3) + 1) * size * size  # at most, with masks
    streaming = opts.cache is not None and stream.wanted(opts.stream, nbytes)
    if streaming:
        images, masks, kept = _streamed(
            files,
            name=name,
            size=size,
            opts=opts,
            where=where,
            channels=channels,
            mask_files=mask_files,
            problems=problems,
        )
    else:
        images, masks, kept = read_files(
            files,
            size=size,
            opts=opts,
            where=where,
            mask_files=mask_files,
            problems=problems,
            channels=native,
        )
        images, masks = from_numpy_hwc(images), None if masks is None else from_numpy_hwc(masks)
    labels = None if labels is None else labels[torch.tensor(kept, dtype=torch.int64)]
    return ImageSet(images, labels, name=name, classes=classes, masks=masks, streamed=streaming)


def _streamed(
    files: list[Path],
    *,
    name: str,
    size: int,
    opts: ReadOptions,
    where: str,
    channels: int | None,
    mask_files: list[Path | None] | None,
    problems: list[str] | None,
) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """read_files' images, masks and kept indices, as (N, C, S, S) and (N, 1, S, S) tensors
    memory-mapped from the stream cache; the warning about skipped files as read_files'."""
    settings = {
        "size": size,
        "channels": channels,
        "resize_mode": opts.resize_mode,
        "background": opts.background,
        "tolerance": opts.tolerance,
        "skip_bad_files": opts.skip_bad_files,
        "mask_column": mask_files is not None,
    }
    key = stream.fingerprint([*files, *(mask_files or [])], settings)
    path = opts.cache / "stream" / f"{name}-{key}"
    unreadable, problems = [], list(problems or [])
    items = decoded(files, size=size, opts=opts, problems=unreadable, mask_files=mask_files)
    entry = stream.load(
        path,
        items,
        problems=unreadable,
        total=len(files),
        channels=channels,
        where=where,
        origin_id=stream.origin(name, [*files, *(mask_files or [])], settings),
    )
    # A cached entry remembers the files it skipped; a new one has just found them.
    report_skipped(problems + (entry[2]["problems"] if entry else unreadable), len(problems), where)
    if entry is None:
        raise UserError(f"{where}: no readable images left")
    images, masks, meta = entry
    mb = (images.numel() + (0 if masks is None else masks.numel())) / 1e6
    print(
        f"streaming {where}: {len(images):,} images, {mb:,.1f} MB decoded, memory-mapped from "
        f"{path}",
        file=sys.stderr,
    )
    return images, masks, meta["kept"]


def _relative(path: Path, root: Path) -> Path:
    """path below root, or path itself (a CSV manifest may list absolute paths)."""
    try:
        return path.relative_to(root)
    except ValueError:
        return path


def held_out(files: list[Path], root: Path) -> np.ndarray:
    """A fixed pseudo-random 10% of files, chosen by a hash of their relative path."""
    keys = [int(hashlib.sha1(str(_relative(f, root)).encode()).hexdigest()[:8], 16) for f in files]
    return np.array([k % 1000 < TEST_FRACTION * 1000 for k in keys])


def load_folder(
    folder: Path,
    split: str,
    *,
    size: int,
    opts: ReadOptions = ReadOptions(),
    channels: int | None = None,
) -> ImageSet | None:
    """The split of a folder as an ImageSet, or None for the test split of a flat folder.

    split "eval" is a folder given as a test set: its test/ sub-folder if it has one, else all.
    `channels` only matters to a streamed split (see read_images)."""
    has_splits = (folder / "train").is_dir() and (folder / "test").is_dir()
    if split == "eval":
        files, labels, classes = scan(folder / "test" if has_splits else folder)
    elif has_splits:
        files, labels, classes = scan(folder / split)
    else:
        files, labels, classes = scan(folder)
        if labels is None:
            if split == "test":
                return None
        else:
            test = held_out(files, folder)
            keep = test if split == "test" else ~test
            files = [f for f, k in zip(files, keep) if k]
            labels = [l for l, k in zip(labels, keep) if k]
    if not files:
        raise UserError(
            f"folder:{folder}: no images fall in its held-out {split} split (10% of the files, "
            f"chosen by name); add images, or give train/ and test/ sub-folders"
        )
    return read_images(
        files,
        None if labels is None else torch.tensor(labels, dtype=torch.int64),
        name=f"folder-{folder.name}-{split}",
        classes=classes,
        size=size,
        opts=opts,
        where=f"folder:{folder}",
        channels=channels,
    )
