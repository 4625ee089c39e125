"""Target validation accuracy against training time, for each pair, beside the PyTorch-GAN
PixelDA architecture trained under the same budget on the same data.

Usage: python benchmarks/time_to_accuracy.py --data-root ../shared/data [--pairs mnistm usps]
       [--minutes 10] [--seeds 0 1] [--eval-every 250] [--reference-eval-s 30]
       [--sides ours reference] [--out benchmarks/time_to_accuracy] [-- extra pixelda.train flags]

Ours: pixelda.train with --max-minutes (its defaults unless flags follow `--`). The reference:
the models of eriklindernoren/PyTorch-GAN implementations/pixelda (rebuilt in
benchmarks/reference_throughput.py), its losses and optimizers (least-squares GAN, task weight
0.1, Adam 2e-4, batch 64), trained by the loop below for the same minutes of training time. Both
are scored in eval mode on the same 1,000 validation images held out of the target's training
split, evaluation time excluded. Per pair it prints the curves and the speed-up: the time the
reference needs to reach its best accuracy, divided by the time ours needs to reach it.
Results are kept per pair and budget (--minutes), ours per seed: each run adds its curve to
OUT/results.json (under a lock, so pairs or seeds may run as separate processes at once) and
rewrites OUT/results.md and OUT/time_to_accuracy.png from everything stored.
"""

import argparse
import fcntl
import itertools
import json
import os
import shlex
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import split_argv
from reference_throughput import RefClassifier, RefDiscriminator, RefGenerator

import pixelda
from pixelda.batches import Batches
from pixelda.config import resolve
from pixelda.flags import train_parser
from pixelda.helpers import uniform_noise
from pixelda.metrics import score
from pixelda.rundata import load_data
from pixelda.runtime import hardware

PAIRS = ("mnistm", "usps")
# Bousmalis et al. 2017, Table 1 (test accuracy after 250,000 steps on a GPU): the line to beat.
PAPER = {"mnistm": 98.2, "usps": 95.9}
REF_BATCH, REF_LR, REF_TASK_WEIGHT, REF_LATENT = 64, 2e-4, 0.1, 10


def ours(target: str, args, extra: list[str], out: Path) -> list[tuple[float, float]]:
    """Train pixelda for args.minutes -> [(training minutes, validation accuracy)]."""
    overrides = vars(train_parser().parse_args(extra))
    run = pixelda.train(
        **{
            "data_root": args.data_root,
            "target": target,
            "max_minutes": args.minutes,
            "steps": 1_000_000,
            "eval_every": args.eval_every,
            "progress": False,
            **overrides,
            "out": str(out),
            "overwrite": out.exists(),
        }
    )
    return [
        (r["train_s"] / 60, r["target_val_acc"])
        for r in run.metrics
        if r.get("kind") == "eval" and "target_val_acc" in r
    ]


def reference(target: str, args) -> list[tuple[float, float]]:
    """The PyTorch-GAN PixelDA script's models and step on our data and validation split."""
    cfg = resolve({"data_root": args.data_root, "target": target, "seed": 0})
    data = load_data(cfg)
    c, size = data.source_train.channels, cfg.image_size
    torch.manual_seed(0)
    g = RefGenerator(channels=c, size=size, latent_dim=REF_LATENT, blocks=6)
    d, t = RefDiscriminator(channels=c), RefClassifier(channels=c, size=size, classes=10)
    opt_g = torch.optim.Adam(itertools.chain(g.parameters(), t.parameters()), REF_LR, (0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), REF_LR, (0.5, 0.999))
    batches = Batches(
        data.source_train,
        data.target_train,
        batch_size=REF_BATCH,
        seed=0,
        device=torch.device("cpu"),
    )
    curve, train_s, next_eval = [], 0.0, args.reference_eval_s
    while train_s < args.minutes * 60:
        start = time.perf_counter()
        b = batches.next()
        x_fake = g(b.x_src, uniform_noise((len(b.x_src), REF_LATENT)))
        task = F.cross_entropy(t(x_fake), b.y_src) + F.cross_entropy(t(b.x_src), b.y_src)
        d_fake = d(x_fake)
        g_loss = F.mse_loss(d_fake, torch.ones_like(d_fake)) + REF_TASK_WEIGHT * task / 2
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_real, d_fake = d(b.x_tgt), d(x_fake.detach())
        d_loss = (
            F.mse_loss(d_real, torch.ones_like(d_real))
            + F.mse_loss(d_fake, torch.zeros_like(d_fake))
        ) / 2
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        train_s += time.perf_counter() - start
        if train_s >= next_eval or train_s >= args.minutes * 60:
            curve.append((train_s / 60, score(t, data.target_val)["acc"]))
            next_eval += args.reference_eval_s
    return curve


def minutes_to(curve: list[tuple[float, float]], acc: float) -> float | None:
    """The first evaluation's time at which the curve reaches acc; None if it never does."""
    return next((m for m, a in curve if a >= acc), None)


def speedup(ours_curve, ref_curve) -> dict:
    """How much sooner ours reaches the reference's best accuracy."""
    best = max(a for _, a in ref_curve)
    t_ref, t_ours = minutes_to(ref_curve, best), minutes_to(ours_curve, best)
    return {
        "reference_best": best,
        "reference_minutes": t_ref,
        "ours_minutes": t_ours,
        "speedup": None if t_ours is None else t_ref / max(t_ours, 1e-9),
    }


def budget_key(minutes: float) -> str:
    return f"{minutes:g} min"


def seed_label(seeds: list[str]) -> str:
    """'seed 0' for one seed, 'seeds 0, 1' for several."""
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(seeds)


def seed_curves(entry: dict) -> list[list]:
    """Ours: one curve per seed, in seed order."""
    return [entry["ours"][k] for k in sorted(entry.get("ours", {}), key=int)]


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (target, budgets) in zip(axes[0], results.items()):
        for key, entry in sorted(budgets.items(), key=lambda kv: kv[1]["minutes"]):
            for seed, curve in sorted(entry.get("ours", {}).items()):
                ax.plot(
                    [m for m, _ in curve],
                    [100 * a for _, a in curve],
                    marker=".",
                    label=f"pixelda, {key} budget, seed {seed}",
                )
            if entry.get("reference"):
                curve = entry["reference"]
                ax.plot(
                    [m for m, _ in curve],
                    [100 * a for _, a in curve],
                    marker=".",
                    color="grey",
                    label=f"PyTorch-GAN script, {key} budget",
                )
        ax.axhline(PAPER[target], color="black", linestyle="--", linewidth=1, label="paper")
        ax.set(
            xlabel="training minutes",
            ylabel="target validation accuracy (%)",
            title=f"MNIST → {target}",
            xscale="log",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def cell(curves: list[list], minutes: float) -> str:
    """The last evaluation at or before `minutes`, as the mean ± sd over the curves' seeds."""
    seen = [[a for t, a in c if t <= minutes + 1e-6] for c in curves]
    if not curves or any(not s for s in seen):
        return "—"
    last = torch.tensor([100 * s[-1] for s in seen], dtype=torch.float64)
    if len(last) == 1:
        return f"{last.item():.1f}"
    return f"{last.mean().item():.1f} ± {last.std().item():.1f}"


def markdown(results: dict, when: str) -> str:
    lines = []
    for target, budgets in results.items():
        entries = sorted(budgets.items(), key=lambda kv: kv[1]["minutes"])
        longest = max(e["minutes"] for _, e in entries)
        marks = sorted({m for m in (1, 2, 5, 10, 30, 60, 120) if m < longest} | {longest})
        lines.append(f"**MNIST → {target}** (validation accuracy, %; mean ± sd over seeds)\n")
        lines.append("| side, budget | " + " | ".join(f"{m:g} min" for m in marks) + " |")
        lines.append("|---" * (len(marks) + 1) + "|")
        for key, e in entries:
            within = [m for m in marks if m <= e["minutes"]]
            rows = (
                (f"pixelda, {key} ({seed_label(sorted(e.get('ours', {})))})", seed_curves(e)),
                (f"PyTorch-GAN script, {key}", [e["reference"]] if e.get("reference") else []),
            )
            for label, curves in rows:
                if curves:
                    cells = [cell(curves, m) if m in within else "" for m in marks]
                    lines.append(f"| {label} | " + " | ".join(cells) + " |")
        for key, e in entries:
            s = e.get("speedup")
            if s and s["speedup"] is not None:
                lines.append(
                    f"\n{key} budget: the script's best, {100 * s['reference_best']:.1f}%, came "
                    f"after {s['reference_minutes']:.1f} min; pixelda (seed 0) reached it after "
                    f"{s['ours_minutes']:.2f} min (its first evaluation at or above it; "
                    f"evaluations every {e.get('eval_every', '?')} steps): "
                    f"**{s['speedup']:.0f}x** sooner."
                )
        lines.append("")
    commands = {
        c for b in results.values() for e in b.values() for k, c in e.items() if k.startswith("cmd")
    }
    lines += [f"`{c}`  " for c in sorted(commands)]
    lines.append(f"{hardware()}, {when}")
    return "\n".join(lines) + "\n"


@contextmanager
def stored_results(out: Path):
    """results.json read and, on leaving, written with the markdown and the plot, under a lock:
    runs of other pairs or seeds may write it at the same time."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = out / "results.json"
        results = json.loads(path.read_text()) if path.is_file() else {}
        yield results
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        path.write_text(json.dumps(results, indent=2) + "\n")
        (out / "results.md").write_text(markdown(results, when))
        plot(results, out / "time_to_accuracy.png", f"{hardware()}, {when}")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    own, extra = split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="")
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=PAIRS)
    p.add_argument("--minutes", type=float, default=10.0, help="training minutes per side")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="ours: one run per seed")
    p.add_argument("--eval-every", type=int, default=250, help="ours: steps between evaluations")
    p.add_argument("--reference-eval-s", type=float, default=30.0)
    p.add_argument(
        "--sides", nargs="+", default=["ours", "reference"], choices=["ours", "reference"]
    )
    p.add_argument("--out", default="benchmarks/time_to_accuracy")
    args = p.parse_args(own)
    out, key = Path(args.out), budget_key(args.minutes)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={threads} " if threads else "") + shlex.join(
        ["python", "benchmarks/time_to_accuracy.py", *argv]
    )
    for target in args.pairs:
        if "ours" in args.sides:
            for seed in args.seeds:
                run_out = out / "runs" / f"{target}-{args.minutes:g}min-seed{seed}"
                curve = ours(target, args, [*extra, "--seed", str(seed)], run_out)
                with stored_results(out) as results:
                    e = results.setdefault(target, {}).setdefault(key, {"minutes": args.minutes})
                    e.setdefault("ours", {})[str(seed)] = curve
                    e["eval_every"], e["cmd_ours"] = args.eval_every, command
                    update_speedup(e)
        if "reference" in args.sides:
            curve = reference(target, args)
            with stored_results(out) as results:
                e = results.setdefault(target, {}).setdefault(key, {"minutes": args.minutes})
                e["reference"], e["cmd_reference"] = curve, command
                update_speedup(e)
    print((out / "results.md").read_text())


def update_speedup(entry: dict) -> None:
    if entry.get("ours") and entry.get("reference"):
        entry["speedup"] = speedup(seed_curves(entry)[0], entry["reference"])


if __name__ == "__main__":
    main()
