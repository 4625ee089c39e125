"""Export throughput (images/s) of a default fast-preset generator at 32x32, both formats.

Random weights and random labeled source images: the cost per image does not depend on them.
Also times the generator alone and PNG encoding at a few zlib levels, to show the bottleneck.

Usage: python benchmarks/export_throughput.py [--n 10000] [--batch-size 256] [--threads 0]
"""

import argparse
import io
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelda import checkpoint, config, exporting
from pixelda.data import ImageSet
from pixelda.methods import DataInfo, pixelda

SIZE, CHANNELS, CLASSES = 32, 3, [str(d) for d in range(10)]


def write_checkpoint(path: Path) -> None:
    cfg = config.resolve({})  # the default preset (fast), image size 32
    info = DataInfo(channels=CHANNELS, image_size=SIZE, num_outputs=10, classes=CLASSES)
    torch.manual_seed(0)
    models = pixelda.build(cfg, info)
    checkpoint.save(
        path,
        config=asdict(cfg),
        data_info=info.to_dict(),
        step=0,
        wall_s=0.0,
        train_s=0.0,
        models=models,
        optimizers=pixelda.optimizers(models, cfg),
        batches={},
    )


def plan_for(ckpt_path: Path, out: Path, source: ImageSet, fmt: str, batch_size: int):
    cfg = exporting.ExportConfig(
        checkpoint=str(ckpt_path), out=str(out), format=fmt, batch_size=batch_size, progress=False
    )
    ckpt, run, run_cfg = exporting.load_generator(ckpt_path, torch.device("cpu"))
    return exporting.Plan(
        cfg,
        out,
        ckpt_path,
        ckpt,
        run,
        source,
        torch.arange(len(source)),
        "random",
        CLASSES,
        torch.device("cpu"),
        run_cfg,
        run_cfg.adapted_zoom,
    )


def time_generator(plan, n: int) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    batches = [images for images, *_ in exporting.adapt_batches(plan)]
    return n / (time.perf_counter() - start), torch.cat(batches)[:256, 0]


def time_png(images: torch.Tensor) -> None:
    arrays = [im.permute(1, 2, 0).numpy() for im in images]
    for level in (0, 1, 6, 9):
        start, size = time.perf_counter(), 0
        for array in arrays:
            buf = io.BytesIO()
            Image.fromarray(array).save(buf, format="PNG", compress_level=level)
            size += buf.tell()
        rate = len(arrays) / (time.perf_counter() - start)
        print(
            f"  PNG encode, compress_level {level}: {rate:7.0f} images/s, "
            f"{size / len(arrays):6.0f} bytes/image"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="source images (1 variant each)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, CHANNELS, SIZE, SIZE), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (args.n,), generator=g)
    source = ImageSet(images, labels, name="random", classes=CLASSES)
    print(
        f"{args.n} images of {CHANNELS}x{SIZE}x{SIZE}, fast preset generator, "
        f"{torch.get_num_threads()} torch threads, batch {args.batch_size}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_checkpoint(tmp / "ckpt.pt")
        few = source.subset(torch.arange(min(args.n, 2048)))
        rate, sample = time_generator(
            plan_for(tmp / "ckpt.pt", tmp / "g", few, "npz", args.batch_size), len(few)
        )
        print(f"  generator alone (BN folded, channels_last): {rate:7.0f} images/s")
        time_png(sample)
        for fmt in exporting.FORMATS:
            plan = plan_for(tmp / "ckpt.pt", tmp / fmt, source, fmt, args.batch_size)
            start, cpu = time.perf_counter(), time.process_time()
            exporting.export(plan)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            # CPU seconds show how much of the machine the export got: on a shared machine the
            # wall-clock rate understates what two free cores give.
            print(
                f"export --format {fmt:11s}: {args.n / seconds:7.0f} images/s "
                f"({args.n} in {seconds:.1f}s, {cpu:.1f} CPU-s over all threads; "
                f"60,000 would take {60_000 / args.n * seconds:.0f}s)"
            )


if __name__ == "__main__":
    main()
