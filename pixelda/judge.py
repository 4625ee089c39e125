"""The judge: a digit classifier trained once on real training images and cached, used to score
what a conditional GAN generates (a classifier-based measure, as in Odena et al. 2017)."""

import hashlib
import sys
from pathlib import Path

import torch

from . import losses
from .data import ImageSet, to_float
from .fileio import atomic_torch_save
from .helpers import optimize
from .models import TaskClassifier

FORMAT = "pixelda-judge"
# Changing how the judge is trained changes its cache key, so stale judges are never reused.
VERSION = 1
# Counted in steps, not epochs, so the 4,000 embedded digits get as many updates as full MNIST
# (1,000 steps of 128 is about 2 epochs of the 60,000: ~99% test accuracy).
STEPS = 1000
BATCH_SIZE = 128
LR = 1e-3
SEED = 0


def cache_path(train: ImageSet, cache_dir: Path) -> Path:
    """cache_dir/judges/<name>-<n>-<C>x<S>px-<digest>.pt; the digest covers images and labels."""
    digest = hashlib.sha1(f"v{VERSION}-{STEPS}-{BATCH_SIZE}-{LR}-{SEED}".encode())
    for part in train.images.split(4096):  # a chunk at a time: a streamed set stays on disk
        digest.update(part.numpy().tobytes())
    digest.update(train.labels.numpy().tobytes())
    size = train.images.size(-1)
    name = f"{train.name}-{len(train)}-{train.channels}x{size}px-{digest.hexdigest()[:12]}.pt"
    return Path(cache_dir).expanduser() / "judges" / name


def train_judge(train: ImageSet) -> TaskClassifier:
    """TaskClassifier trained with Adam for STEPS shuffled batches of `train`; in eval mode.

    Uses its own RNG streams, so training a judge (or loading a cached one) mid-run leaves
    the run's random numbers, and with them a resumed run's losses, unchanged."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = TaskClassifier(
            in_channels=train.channels,
            image_size=train.images.size(-1),
            num_outputs=train.num_classes,
        )
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        g = torch.Generator().manual_seed(SEED)
        order = torch.empty(0, dtype=torch.long)
        for _ in range(STEPS):
            if len(order) < BATCH_SIZE:  # a new epoch: reshuffle
                order = torch.randperm(len(train), generator=g)
            idx, order = order[:BATCH_SIZE], order[BATCH_SIZE:]
            optimize(opt, losses.task_loss(model(to_float(train.images[idx])), train.labels[idx]))
    return model.eval()


def load_or_train(train: ImageSet, cache_dir: Path) -> TaskClassifier:
    """The cached judge for `train` (same data, same image size), training and caching it first
    if there is none. Returned in eval mode on the CPU."""
    path = cache_path(train, cache_dir)
    model = TaskClassifier(
        in_channels=train.channels, image_size=train.images.size(-1), num_outputs=train.num_classes
    )
    if path.is_file():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        return model.eval()
    print(
        f"judge: training a digit classifier on {len(train)} real {train.name} images "
        f"(once; cached in {path})",
        file=sys.stderr,
        flush=True,
    )
    model = train_judge(train)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"format": FORMAT, "version": VERSION, "model": model.state_dict()}, path)
    return model
