"""Re-check the fast preset on validation accuracy: the default and variants of it (learning
rate, schedule, widths, loss weights), each trained with the same budget and seed, scored on
the target's validation split (never its test split).

Usage: python benchmarks/preset_sweep.py --data-root ../shared/data [--target mnistm]
       [--steps 1200] [--seed 0] [--variants default lr-1e-3 ...] [--out /tmp/sweep]
       [-- extra training flags for every variant]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_one, split_argv  # noqa: E402  (benchmarks/common.py)

from pixelda.flags import train_parser  # noqa: E402

# name -> the flags that differ from the fast preset's defaults
VARIANTS = {
    "default": {},
    "lr-1e-3": {"lr": 1e-3},
    "lr-4e-3": {"lr": 4e-3},
    "lr-step": {"lr_schedule": "step"},
    "g64x2-d64": {"g_width": 64, "d_width": 64},
    "task-in-g-x10": {"task_in_g_weight": 0.100959947002},
}


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    argv, extra = split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--target", default="mnistm")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--out", default="/tmp/pixelda-sweep")
    args = p.parse_args(argv)
    common = vars(train_parser().parse_args(extra))
    rows = []
    for name in args.variants:
        out = Path(args.out) / f"{args.target}-{name}-seed{args.seed}"
        overrides = {
            **common,
            **VARIANTS[name],
            "data_root": args.data_root,
            "target": args.target,
            "steps": args.steps,
            "seed": args.seed,
            "out": str(out),
            "progress": False,
        }
        summary = run_one(overrides, out)  # reuses a finished run of the same config
        rows.append({"variant": name, **VARIANTS[name], "summary": summary})
        print(
            f"{name}: validation {summary['target_val_acc']:.2%} at the end, best "
            f"{summary['best']['value']:.2%} at step {summary['best']['step']}; "
            f"{summary['train_s']:.0f}s training",
            flush=True,
        )
    print(
        f"\n| variant ({args.target}, {args.steps} steps, seed {args.seed}) | flags | "
        "validation at the end | best validation (step) | training s |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        s, flags = r["summary"], VARIANTS[r["variant"]]
        shown = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in flags.items()) or "(preset)"
        print(
            f"| {r['variant']} | {shown} | {s['target_val_acc']:.2%} | "
            f"{s['best']['value']:.2%} ({s['best']['step']}) | {s['train_s']:.0f} |"
        )
    return rows


if __name__ == "__main__":
    main()
