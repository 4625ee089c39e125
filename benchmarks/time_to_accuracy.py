"""Target validation accuracy against training time, for each pair, beside the PyTorch-GAN
PixelDA architecture trained under the same budget on the same data.

Usage: python benchmarks/time_to_accuracy.py --data-root ../shared/data [--pairs mnistm usps]
       [--minutes 10] [--eval-every 250] [--reference-eval-s 30] [--sides ours reference]
       [--out benchmarks/time_to_accuracy] [-- extra pixelda.train flags]

Ours: pixelda.train with --max-minutes (its defaults unless flags follow `--`). The reference:
the models of eriklindernoren/PyTorch-GAN implementations/pixelda (rebuilt in
benchmarks/reference_throughput.py), its losses and optimizers (least-squares GAN, task weight
0.1, Adam 2e-4, batch 64), trained by the loop below for the same minutes of training time. Both
are scored in eval mode on the same 1,000 validation images held out of the target's training
split, evaluation time excluded. Per pair it prints the curves and the speed-up: the time the
reference needs to reach its best accuracy, divided by the time ours needs to reach it.
Writes OUT/results.json, OUT/results.md and OUT/time_to_accuracy.png; a side run alone
(--sides) updates its curves in an existing OUT/results.json and keeps the other side's.
"""

import argparse
import itertools
import json
import shlex
import sys
import time
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


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (target, r) in zip(axes[0], results.items()):
        for side, curve in (("pixelda", r.get("ours")), ("PyTorch-GAN script", r.get("reference"))):
            if curve:
                ax.plot([m for m, _ in curve], [100 * a for _, a in curve], marker=".", label=side)
        ax.set(
            xlabel="training minutes",
            ylabel="target validation accuracy (%)",
            title=f"MNIST → {target}",
        )
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(results: dict, command: str, when: str) -> str:
    lines = []
    for target, r in results.items():
        lines.append(f"**MNIST → {target}** (validation accuracy, %)\n")
        marks = sorted({m for m in (1, 2, 5, 10, 30, 60, 120) if m < r["minutes"]})
        marks.append(r["minutes"])
        lines.append("| side | " + " | ".join(f"{m:g} min" for m in marks) + " |")
        lines.append("|---" * (len(marks) + 1) + "|")
        for side, curve in (("pixelda", r.get("ours")), ("PyTorch-GAN script", r.get("reference"))):
            if curve:
                cells = []
                for m in marks:
                    seen = [a for t, a in curve if t <= m + 1e-6]
                    cells.append(f"{100 * seen[-1]:.1f}" if seen else "—")
                lines.append(f"| {side} | " + " | ".join(cells) + " |")
        s = r.get("speedup")
        if s and s["speedup"] is not None:
            lines.append(
                f"\nThe script's best, {100 * s['reference_best']:.1f}%, came after "
                f"{s['reference_minutes']:.1f} min; pixelda reached it after "
                f"{s['ours_minutes']:.2f} min (its first evaluation at or above it; evaluations "
                f"every {r.get('eval_every', '?')} steps): **{s['speedup']:.0f}x** sooner.\n"
            )
        lines.append("")
    commands = {c for r in results.values() for k, c in r.items() if k.startswith("command_")}
    lines += [f"`{c}`  " for c in sorted(commands or {command})]
    lines.append(f"{hardware()}, {when}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    own, extra = split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="")
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=PAIRS)
    p.add_argument("--minutes", type=float, default=10.0, help="training minutes per side")
    p.add_argument("--eval-every", type=int, default=250, help="ours: steps between evaluations")
    p.add_argument("--reference-eval-s", type=float, default=30.0)
    p.add_argument(
        "--sides", nargs="+", default=["ours", "reference"], choices=["ours", "reference"]
    )
    p.add_argument("--out", default="benchmarks/time_to_accuracy")
    args = p.parse_args(own)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "results.json"
    results = json.loads(stored.read_text()) if stored.is_file() else {}
    for target in args.pairs:
        r = results.setdefault(target, {})
        if r.get("minutes") != args.minutes:  # another budget: start the pair afresh
            r.clear()
        r["minutes"] = args.minutes
        if "ours" in args.sides:
            r["ours"] = ours(target, args, extra, out / "runs" / target)
            r["eval_every"] = args.eval_every
            r["command_ours"] = "python benchmarks/time_to_accuracy.py " + shlex.join(argv)
        if "reference" in args.sides:
            r["reference"] = reference(target, args)
            r["command_reference"] = "python benchmarks/time_to_accuracy.py " + shlex.join(argv)
        if r.get("ours") and r.get("reference"):
            r["speedup"] = speedup(r["ours"], r["reference"])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    command = "python benchmarks/time_to_accuracy.py " + shlex.join(argv)
    text = markdown(results, command, when)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(text)
    plot(results, out / "time_to_accuracy.png", f"{hardware()}, {when}")
    print(text)
    return results


if __name__ == "__main__":
    main()
