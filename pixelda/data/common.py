"""The one data contract: ImageSet holds uint8 NCHW images in memory (or memory-mapped from
disk); models see float32 [-1, 1]."""

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class ImageSet:
    """A split of a dataset, whole, as tensors.

    images: uint8 (N, C, H, W); labels: int64 (N,) class indices, float32 (N, K) regression
    targets, or None when unlabeled; masks: uint8 (N, 1, H, W) in {0, 1} (foreground) or None.
    streamed: images and masks are memory-mapped from disk (pixelda/data/stream.py): index
    them a batch at a time; copying them whole (.to(device), .clone()) would read them all.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    name: str
    classes: list[str] | None = None
    masks: torch.Tensor | None = None
    streamed: bool = False
    # Streamed sets only: the rows of `images` (and labels, masks) that belong to this set, so a
    # training pool stays memory-mapped after its validation split is taken out.
    rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.size(0) if self.rows is None else len(self.rows)

    @property
    def channels(self) -> int:
        return self.images.size(1)

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None

    def unlabeled(self) -> "ImageSet":
        """The same images with labels dropped: what a target training split may show."""
        return replace(self, labels=None, classes=self.classes)

    def subset(self, index: torch.Tensor) -> "ImageSet":
        """Items `index` of the set, copied into memory."""
        if self.rows is not None:
            index = self.rows[index]
        return replace(
            self,
            rows=None,
            images=self.images[index],
            labels=None if self.labels is None else self.labels[index],
            masks=None if self.masks is None else self.masks[index],
            streamed=False,  # indexing copies into memory
        )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], on the images' device."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (rounded, clamped)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)


def from_numpy_hwc(array: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 (N, C, H, W)."""
    t = torch.from_numpy(np.array(array, copy=True, order="C"))
    if t.dim() == 4 and t.size(3) == 1:
        # Not a permute: its (N, 1, H, W) strides (HW, 1, W, 1) also read as channels_last,
        # and convolutions would then pick other kernels, rounding differently than on a
        # row-major copy of the same images (MNIST's layout).
        t = t[..., 0]
    return t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2).contiguous()


def resize(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear resize of uint8 (N, C, H, W) to (N, C, size, size), in chunks to bound memory."""
    if images.shape[-2:] == (size, size):
        return images
    out = [
        F.interpolate(
            part.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for part in images.split(chunk)
    ]
    return torch.cat(out) if out else images.new_zeros((0, images.size(1), size, size))


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    if masks.shape[-2:] == (size, size):
        return masks
    return F.interpolate(masks.float(), size=(size, size), mode="nearest").to(torch.uint8)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grayscale to RGB by repetition, RGB to grayscale by ITU-R 601 luma."""
    c = images.size(1)
    if c == channels:
        return images
    if c == 1:
        return images.expand(-1, channels, -1, -1).contiguous()
    if channels == 1 and c == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().to(torch.uint8)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def conform(data: ImageSet, *, size: int, channels: int) -> ImageSet:
    """Resize and convert channels so every set in a run shares one shape."""
    masks = None if data.masks is None else resize_masks(data.masks, size)
    images = match_channels(resize(data.images, size), channels)
    # A converted copy is in memory (streamed sets are converted as they are decoded).
    streamed = data.streamed and images is data.images
    return replace(data, images=images, masks=masks, streamed=streamed)


def frame_digits(images: torch.Tensor, frame: int = 32) -> torch.Tensor:
    """Centre (N, C, h, w) images in a (frame x frame) black canvas: MNIST's 28x28 digits padded
    by 2 pixels, as Ganin's MNIST-M release composes them at 32x32."""
    h, w = images.shape[-2:]
    top, left = (frame - h) // 2, (frame - w) // 2
    return F.pad(images, (left, frame - w - left, top, frame - h - top))


def validation_split(
    labels: torch.Tensor, size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (pool, val) indices: `size` items held out for validation, the rest a pool.

    Class labels are stratified: each class gets its share of `size` in proportion to its
    count (largest remainders first).
    Numeric (regression) targets get a plain random subset. Both index tensors are sorted."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    if labels.dtype.is_floating_point:
        val = torch.randperm(n, generator=g)[:size]
    else:
        classes, counts = labels.unique(return_counts=True)
        share = counts.double() * size / n
        quota = share.floor().long()
        extra = size - int(quota.sum())
        # Largest remainders first; ties to the larger class, then the lower class index.
        order = sorted(range(len(classes)), key=lambda i: (-(share[i] - quota[i]), -counts[i], i))
        for i in order[:extra]:
            quota[i] += 1
        parts = []
        for c, k in zip(classes.tolist(), quota.tolist()):
            members = (labels == c).nonzero().flatten()
            parts.append(members[torch.randperm(len(members), generator=g)[:k]])
        val = torch.cat(parts)
    val = val.sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().flatten(), val


def stratified_split(
    labels: np.ndarray, test_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed train/test indices with `test_per_class` test images of each class."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
