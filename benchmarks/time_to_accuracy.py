"""Target validation accuracy against wall-clock training time for one preset.

Usage: python benchmarks/time_to_accuracy.py --data-root ../shared/data --minutes 10
       [--preset fast] [--eval-every 250] [--out benchmarks/time_to_accuracy] [-- extra flags]
Trains once with --max-minutes, evaluating on the target's validation split (held out of its
training split, never trained on) along the way, then prints a table (minutes of training,
step, accuracy) and saves a PNG curve.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import split_argv  # noqa: E402  (benchmarks/common.py)

from pixelda import cli
from pixelda.fileio import atomic_write_bytes


def plot(points: list[tuple[float, int, float]], path: Path, title: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in points], [p[2] * 100 for p in points], marker="o")
    ax.set(
        xlabel="training minutes (evaluation excluded)",
        ylabel="target validation accuracy (%)",
        title=title,
    )
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    argv, extra = split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--preset", default="fast")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--steps", type=int, default=100_000, help="upper bound; time decides")
    p.add_argument("--out", default="benchmarks/time_to_accuracy")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    flags = [
        "--preset",
        args.preset,
        "--max-minutes",
        str(args.minutes),
        "--steps",
        str(args.steps),
        "--eval-every",
        str(args.eval_every),
        "--out",
        str(out / "run"),
        "--overwrite",
        "--no-progress",
        *extra,
    ]
    if args.data_root:
        flags += ["--data-root", args.data_root]
    summary = cli.train_main(flags)
    records = [json.loads(line) for line in (out / "run" / "metrics.jsonl").open()]
    points = [
        (r["train_s"] / 60, r["step"], r["target_val_acc"])
        for r in records
        if r["kind"] == "eval" and "target_val_acc" in r
    ]
    print("| training minutes | step | target validation accuracy |\n|---:|---:|---:|")
    for minutes, step, acc in points:
        print(f"| {minutes:.1f} | {step} | {acc:.2%} |")
    plot(points, out / "time_to_accuracy.png", f"{args.preset} preset, {summary['hardware']}")
    print(f"curve: {out / 'time_to_accuracy.png'}")


if __name__ == "__main__":
    main()
