"""Training throughput: source images/s of full iterations (D-step + G-step) per preset.

Usage: python benchmarks/throughput.py [--presets fast paper] [--steps 30] [--image-size 32]
Random images stand in for data (speed does not depend on pixel values). Prints one line per
preset with images/s, seconds per step and peak memory.
"""

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelda.batches import Batch
from pixelda.config import resolve
from pixelda.methods import METHODS, DataInfo


def measure(preset: str, *, steps: int, warmup: int, size: int, device: str, method: str) -> dict:
    torch.manual_seed(0)
    cfg = resolve({"preset": preset, "method": method, "image_size": size})
    info = DataInfo(channels=3, image_size=size, num_outputs=10, classes=list("0123456789"))
    impl = METHODS[method]
    models = impl.build(cfg, info).to(device)
    opts = impl.optimizers(models, cfg)
    b = cfg.batch_size
    batch = Batch(
        x_src=torch.rand(b, 3, size, size, device=device) * 2 - 1,
        y_src=torch.randint(0, 10, (b,), device=device),
        mask_src=None,
        x_tgt=torch.rand(b, 3, size, size, device=device) * 2 - 1,
        y_tgt=torch.randint(0, 10, (b,), device=device),
    )
    for _ in range(warmup):
        impl.train_step(models, opts, batch, cfg, 0.0)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(steps):
        impl.train_step(models, opts, batch, cfg, i / steps)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (
        torch.cuda.max_memory_allocated()
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    params = sum(p.numel() for p in models.parameters())
    return {
        "preset": preset,
        "batch": b,
        "images_per_s": steps * b / dt,
        "s_per_step": dt / steps,
        "peak_mib": peak / 2**20,
        "params": params,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["fast", "paper"])
    p.add_argument("--method", default="pixelda")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, device {args.device}, {args.image_size}x{args.image_size}"
    )
    for preset in args.presets:
        r = measure(
            preset,
            steps=args.steps,
            warmup=args.warmup,
            size=args.image_size,
            device=args.device,
            method=args.method,
        )
        peak_kind = "GPU" if args.device == "cuda" else "process RSS"
        print(
            f"{preset:6s} batch {r['batch']:3d}: {r['images_per_s']:7.1f} source images/s, "
            f"{r['s_per_step'] * 1000:6.1f} ms/step, {r['params'] / 1e6:.2f}M params, "
            f"peak {peak_kind} {r['peak_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
