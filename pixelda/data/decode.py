"""One image file to pixels: decoding untrusted files (every failure a one-line UserError),
awkward modes (16-bit, palette, CMYK, float), geometry (stretch, crop, pad) and foreground masks.
"""

import struct
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError

# Files whose headers decide a folder's channel count (evenly spaced over it): enough for a
# clear majority, few enough to read in well under a second.
CHANNEL_SAMPLE = 1000
RESIZE_MODES = ("stretch", "crop", "pad")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


@dataclass(frozen=True)
class ReadOptions:
    """How files become images: geometry, foreground masks, what to do with unreadable files,
    whether to keep them in memory.

    resize_mode: stretch to SxS, crop (shorter side to S, centre crop) or pad (longer side to S,
    black borders). background: an (R, G, B) colour whose pixels, within `tolerance` on every
    channel, are background; None uses alpha channels (and CSV mask columns) only.
    stream: auto, on or off, memory-mapping decoded images from a cache under `cache`
    (pixelda/data/stream.py); without a cache, never."""

    resize_mode: str = "stretch"
    background: tuple[int, int, int] | None = None
    tolerance: int = 10
    skip_bad_files: bool = False
    stream: str = "off"
    cache: Path | None = None


# Pillow modes read as one channel: bilevel, 8-bit, 16-bit and 32-bit integer grayscale.
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N")


# What Pillow's decoders raise on corrupt input (besides OSError); refused as one-line errors.
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@contextmanager
def _opened(path: Path):
    """Image.open(path) for an untrusted file: any failure to decode it, a decompression bomb
    (over Pillow's MAX_IMAGE_PIXELS, ~89 Mpx) included, is a UserError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except DECODE_ERRORS as e:
        raise UserError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


def _eight_bit(im: Image.Image, path: Path) -> Image.Image:
    """8-bit L, RGB or RGBA: 16-bit and 32-bit integer grayscale scaled from 0..65535 (Pillow's
    convert would clip them, making most pixels white); palettes with transparency via RGBA."""
    if im.mode.startswith("I"):
        array = np.asarray(im, dtype=np.float64) / 257
        return Image.fromarray(array.clip(0, 255).round().astype(np.uint8), "L")
    if im.mode == "F":
        raise UserError(f"{path}: floating-point images are not supported; save it as 8-bit")
    if im.mode == "P" and "transparency" in im.info:
        return im.convert("RGBA")
    return im


def fit(im: Image.Image, size: int, mode: str, resample: int) -> Image.Image:
    """im as size x size: stretched, centre-cropped after scaling its shorter side to size, or
    padded with zeros (black, background) after scaling its longer side to size."""
    w, h = im.size
    if mode == "stretch" or w == h:
        return im if im.size == (size, size) else im.resize((size, size), resample)
    scale = size / (min(w, h) if mode == "crop" else max(w, h))
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if mode == "crop":
        nw, nh = max(nw, size), max(nh, size)
    im = im.resize((nw, nh), resample)
    if mode == "crop":
        left, top = (nw - size) // 2, (nh - size) // 2
        return im.crop((left, top, left + size, top + size))
    canvas = Image.new(im.mode, (size, size), 0)
    canvas.paste(im, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def _binary(im: Image.Image) -> Image.Image:
    return Image.fromarray((np.asarray(im) > 0).astype(np.uint8), "L")


def _foreground(im: Image.Image, path: Path, opts: ReadOptions, mask_path: Path | None):
    """A 0/1 "L" mask the size of im, or None: a mask file first, then the background colour,
    then an alpha channel."""
    if mask_path is not None:
        with _opened(mask_path) as m:
            if m.size != im.size:
                raise UserError(
                    f"{mask_path}: mask is {m.size[0]}x{m.size[1]} but its image {path} is "
                    f"{im.size[0]}x{im.size[1]}"
                )
            return _binary(_eight_bit(m, mask_path).convert("L"))
    if opts.background is not None:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
        far = np.abs(rgb - np.array(opts.background, dtype=np.int16)).max(-1) > opts.tolerance
        return Image.fromarray(far.astype(np.uint8), "L")
    if im.mode in ALPHA_MODES:
        return _binary(im.getchannel("A"))
    return None


def read(
    path: Path,
    size: int,
    channels: int,
    opts: ReadOptions = ReadOptions(),
    mask_path: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One image as uint8 (size, size, channels), its 0/1 uint8 (size, size) foreground mask
    (all ones where it has none, zero in pad borders) and whether it had one."""
    with _opened(path) as im:
        im = _eight_bit(im, path)
        mask = _foreground(im, path, opts, mask_path)
        found = mask is not None
        if mask is None:
            mask = Image.new("L", im.size, 1)
        image = fit(
            im.convert("L" if channels == 1 else "RGB"), size, opts.resize_mode, Image.BILINEAR
        )
        array = np.asarray(image)
    mask = np.asarray(fit(mask, size, opts.resize_mode, Image.NEAREST))
    return (array if channels == 3 else array[..., None]), mask, found


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 (size, size, channels), resized with bilinear filtering; CMYK,
    palette, alpha and 16-bit images converted."""
    return read(path, size, channels)[0]


def folder_channels(path: Path) -> int:
    with _opened(path) as im:
        return 1 if im.mode in GRAY_MODES else 3


def majority_channels(files: list[Path], where: str | None = None) -> int | None:
    """1 or 3: what most of (up to CHANNEL_SAMPLE evenly spaced) files are, colour on a tie;
    None if none can be read. With `where`, a folder mixing both kinds says so on stderr."""
    step = max(1, len(files) // CHANNEL_SAMPLE)
    found = {1: 0, 3: 0}
    for f in files[::step][:CHANNEL_SAMPLE]:
        try:
            found[folder_channels(f)] += 1
        except UserError:
            pass
    if not any(found.values()):
        return None
    channels = 1 if found[1] > found[3] else 3
    if where and found[1] and found[3]:
        print(
            f"warning: {where} mixes grayscale ({found[1]}) and colour ({found[3]}) images"
            f"{' among those sampled' if step > 1 else ''}; reading all as "
            f"{'grayscale' if channels == 1 else 'colour'} (choose with --channels)",
            file=sys.stderr,
        )
    return channels
