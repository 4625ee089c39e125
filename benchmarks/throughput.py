"""Training throughput: source images/s of full iterations (D-step + G-step) per preset.

Usage: python benchmarks/throughput.py [--presets fast paper] [--steps 20] [--amp bf16] ...
       python benchmarks/throughput.py --compare base channels-last fused-adam bf16 [--repeats 3]
Random images stand in for data (speed does not depend on pixel values). After --warmup steps,
each of --steps iterations is timed alone; images/s is the batch over the median step time, so a
burst of load from other processes moves it less than a mean would. --compare runs each variant
(flags joined by "+", e.g. bf16+fused-adam) in a fresh process, interleaved (A, B, A, B ...)
--repeats times, and prints medians, each variant against the first, and each process's peak RSS.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelda import speed
from pixelda.batches import Batch
from pixelda.config import AMP, resolve
from pixelda.methods import METHODS, DataInfo
from pixelda.runtime import hardware

VARIANTS = {
    "base": [],
    "channels-last": ["--channels-last"],
    "fused-adam": ["--fused-adam"],
    "compile": ["--compile"],
    "bf16": ["--amp", "bf16"],
}


def time_steps(step, *, steps: int, warmup: int, device: str) -> list[float]:
    """Seconds of each of `steps` calls of step() after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def peak_mib(device: str) -> float:
    """Peak GPU memory on CUDA, else this process's peak resident set size."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_batch(b: int, size: int, device: str, cfg) -> Batch:
    def images():
        x = torch.rand(b, 3, size, size, device=device) * 2 - 1
        return x.contiguous(memory_format=speed.memory_format(cfg))

    labels = torch.randint(0, 10, (b,), device=device)
    return Batch(x_src=images(), y_src=labels, mask_src=None, x_tgt=images(), y_tgt=labels)


def measure(overrides: dict, *, steps: int, warmup: int, device: str) -> dict:
    """One training setup (a config's overrides) timed as train.py runs it: speed.prepare_models,
    the method's optimizers, train_step under speed.autocast."""
    torch.manual_seed(0)
    cfg = resolve(overrides)
    size = cfg.image_size
    info = DataInfo(channels=3, image_size=size, num_outputs=10, classes=list("0123456789"))
    impl = METHODS[cfg.method]
    t0 = time.perf_counter()
    models = speed.prepare_models(impl.build(cfg, info), cfg, device)
    opts = impl.optimizers(models, cfg)
    batch = random_batch(cfg.batch_size, size, device, cfg)

    def step():
        with speed.autocast(cfg, device):
            impl.train_step(models, opts, batch, cfg, 0.0)

    step()  # the first step compiles, with --compile
    first_s = time.perf_counter() - t0
    times = time_steps(step, steps=steps, warmup=warmup, device=device)
    median = statistics.median(times)
    return {
        "preset": cfg.preset,
        "batch": cfg.batch_size,
        "images_per_s": cfg.batch_size / median,
        "s_per_step": median,
        "first_step_s": first_s,
        "peak_mib": peak_mib(device),
        "params": {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()},
    }


def header(args) -> str:
    return (
        f"# {hardware()}, "
        f"torch {torch.__version__}, device {args.device}, {args.image_size}x{args.image_size}"
    )


def run_json(argv: list[str]) -> dict:
    """A measurement in a fresh Python process (its own peak RSS, no compiled code shared):
    the JSON of its last stdout line."""
    out = subprocess.run([sys.executable, *argv], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved(names: list[str], measure_one, repeats: int) -> dict[str, list[dict]]:
    """measure_one(name) for every name in `repeats` rounds (A, B, A, B ...), so load from
    other processes falls on every name alike; the results by name."""
    runs = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(measure_one(name))
    return runs


def median_rate(rs: list[dict]) -> float:
    return statistics.median(r["images_per_s"] for r in rs)


def rate_text(rs: list[dict], base: float) -> str:
    """Repeated runs' median images/s, their range, and the median against `base`."""
    ips = [r["images_per_s"] for r in rs]
    return (
        f"{median_rate(rs):7.1f} source images/s ({min(ips):.1f}..{max(ips):.1f}), "
        f"x{median_rate(rs) / base:.2f}"
    )


def run_variant(preset: str, variant: str, args) -> dict:
    flags = [f for name in variant.split("+") for f in VARIANTS[name]]
    return run_json([__file__, "--json", "--presets", preset, *flags, *_common(args)])


def _common(args) -> list[str]:
    argv = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    argv += ["--image-size", str(args.image_size), "--device", args.device, "--method", args.method]
    return argv + (["--batch-size", str(args.batch_size)] if args.batch_size else [])


def compare(args) -> None:
    unknown = [n for v in args.compare for n in v.split("+") if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"--compare: unknown variant(s) {unknown}; expected {sorted(VARIANTS)}")
    print(header(args) + f", {args.repeats} interleaved repeats, medians")
    for preset in args.presets:
        runs = interleaved(args.compare, partial(run_variant, preset, args=args), args.repeats)
        base = median_rate(runs[args.compare[0]])
        for variant, rs in runs.items():
            print(
                f"{preset:6s} {variant:28s} batch {rs[0]['batch']:3d}: {rate_text(rs, base)}, "
                f"first step {statistics.median(r['first_step_s'] for r in rs):.1f} s, "
                f"peak RSS {statistics.median(r['peak_mib'] for r in rs):.0f} MiB"
            )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["fast", "paper"])
    p.add_argument("--method", default="pixelda")
    p.add_argument("--steps", type=int, default=20, help="timed steps (median)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=0, help="0: the preset's")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--fused-adam", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--amp", default="none", choices=AMP)
    p.add_argument("--compare", nargs="+", metavar="VARIANT", help=f"of {sorted(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON line per preset")
    args = p.parse_args(argv)
    if args.compare:
        return compare(args)
    if not args.json:
        print(header(args))
    for preset in args.presets:
        overrides = {"preset": preset, "method": args.method, "image_size": args.image_size}
        overrides |= {k: getattr(args, k) for k in ("channels_last", "fused_adam", "compile")}
        overrides |= {"amp": args.amp} | (
            {"batch_size": args.batch_size} if args.batch_size else {}
        )
        r = measure(overrides, steps=args.steps, warmup=args.warmup, device=args.device)
        if args.json:
            print(json.dumps(r))
            continue
        peak_kind = "GPU" if args.device == "cuda" else "process RSS"
        print(
            f"{preset:6s} batch {r['batch']:3d}: {r['images_per_s']:7.1f} source images/s, "
            f"{r['s_per_step'] * 1000:6.1f} ms/step, {sum(r['params'].values()) / 1e6:.2f}M "
            f"params, peak {peak_kind} {r['peak_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
