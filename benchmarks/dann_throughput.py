"""DANN training throughput and peak memory: the tower against a ResNet-18 (--backbone).

Usage: python benchmarks/dann_throughput.py [--setups tower:32 tower:64 resnet18:64] [--steps 10]
Each setup (BACKBONE:IMAGE_SIZE) runs in a fresh process, with DANN's defaults for --preset (the
run's own settings: amp, channels_last, batch size) on random images, timed as
benchmarks/throughput.py times a step: source images/s over the median step, and the process's
peak RSS (model, optimizer, one batch and the step's activations; no dataset).
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import measure, run_json  # noqa: E402

from pixelda import speed  # noqa: E402
from pixelda.config import resolve  # noqa: E402
from pixelda.runtime import cpu_name  # noqa: E402


def measure_setup(setup: str, args) -> dict:
    """One BACKBONE:SIZE setup in this process -> throughput.measure's dict."""
    backbone, size = setup.split(":")
    overrides = {"method": "dann", "preset": args.preset, "backbone": backbone}
    overrides |= {"image_size": int(size), "threads": args.threads}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.threads:
        torch.set_num_threads(args.threads)
    r = measure(overrides, steps=args.steps, warmup=args.warmup, device=args.device)
    return {"setup": setup, **r}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setups", nargs="+", default=["tower:32", "tower:64", "resnet18:64"])
    p.add_argument("--preset", default="fast", help="DANN's defaults under this preset")
    p.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=0, help="0: the preset's")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", action="store_true", help="measure the one setup here, print JSON")
    args = p.parse_args(argv)
    if args.json:
        print(json.dumps(measure_setup(args.setups[0], args)))
        return
    threads = args.threads or torch.get_num_threads()
    amp = speed.amp_mode(resolve({"method": "dann", "preset": args.preset}), args.device)
    print(
        f"# {cpu_name()}, {threads} torch threads, torch "
        f"{torch.__version__}, device {args.device} (amp {amp}), DANN --preset {args.preset}, "
        f"random images, one fresh process per setup, median of {args.steps} steps"
    )
    common = ["--preset", args.preset, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    common += ["--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    for setup in args.setups:
        r = run_json([__file__, "--json", "--setups", setup, "--device", args.device, *common])
        params = sum(r["params"].values()) / 1e6
        print(
            f"{setup:12s} batch {r['batch']:3d}+{r['batch']:<3d}: {r['images_per_s']:7.1f} source "
            f"images/s ({r['s_per_step'] * 1000:.0f} ms/step), peak RSS {r['peak_mib']:.0f} MiB, "
            f"{params:.2f}M parameters"
        )


if __name__ == "__main__":
    main()
