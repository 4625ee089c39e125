"""Scoring speed: the task network's forward passes over a held-out split, by batch size.

Usage: python benchmarks/eval_speed.py [--images 10000] [--channels 1 3] [--batches 1000 500 128]
       [--repeats 3] [--threads 1] [--backbone tower] [--image-size 32]
Every evaluation of a run scores the teacher and the student on the target validation split and
the source test split (10,000 MNIST images) through pixelda.metrics.predict; under a time budget
(--max-minutes) that time is not spent training. Random uint8 images, an untrained network in
eval mode (the speed does not depend on the weights); the median of --repeats passes; "default"
is the batch pixelda.metrics.eval_batch picks for the device.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelda.backbones import task_network  # noqa: E402
from pixelda.metrics import eval_batch, predict  # noqa: E402
from pixelda.runtime import cpu_name  # noqa: E402


def images_per_s(model, images: torch.Tensor, batch: int, repeats: int, device) -> float:
    predict(model, images[:batch], device=device, batch_size=batch)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(model, images, device=device, batch_size=batch)
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--channels", nargs="+", type=int, default=[1, 3])
    p.add_argument("--batches", nargs="+", type=int, default=[1000, 500, 250, 128, 64])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--backbone", default="tower")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"# {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"device {args.device}, --backbone {args.backbone} at {args.image_size}px, "
        f"{args.images} random images, median of {args.repeats} passes"
    )
    default = eval_batch(args.device)
    for channels in args.channels:
        model = task_network(
            args.backbone,
            in_channels=channels,
            image_size=args.image_size,
            num_outputs=10,
            pretrained=False,
        ).to(args.device)
        shape = (args.images, channels, args.image_size, args.image_size)
        images = torch.randint(0, 256, shape, dtype=torch.uint8)
        for batch in sorted(set(args.batches) | {default}, reverse=True):
            rate = images_per_s(model, images, batch, args.repeats, args.device)
            mark = " (default)" if batch == default else ""
            print(
                f"{channels} channel(s), batch {batch:5d}{mark}: {rate:8.0f} images/s, "
                f"{args.images / rate:5.2f} s per {args.images:,} images"
            )


if __name__ == "__main__":
    main()
