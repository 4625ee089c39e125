"""How well each label-free validator picks checkpoints, measured on runs that also have labels.

Usage: python benchmarks/validator_study.py RUN [RUN ...] [--acc target_val_acc] [--json OUT]
       [--plot OUT.png] [--markdown OUT.md]

Per validator, over every evaluation of the given run folders: the Spearman correlation between
the validator (signed so that higher is better) and the target accuracy, pooled and averaged
over runs; and the accuracy of the checkpoint it picks in each run, next to the best checkpoint
(oracle) and the last one. The accuracy is target_val_acc where runs log it, else whatever
--acc names (target_test_acc in runs made before the validation split existed).

Runs are grouped by their target (config.json), one study per pair. Where a group holds a
source-only run, "below source-only" says whether the checkpoint a validator picks among all the
group's runs scores below the best source-only checkpoint: a pick a user must never get.
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pixelda.errors import UserError, cli
from pixelda.selection import evaluations
from pixelda.validators import HIGHER_IS_BETTER


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties given the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            out[k] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on tie-averaged ranks); None if undefined."""
    if len(x) < 2:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5 if vx > 0 and vy > 0 else None


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def study(runs: list[str], acc_key: str) -> dict:
    """{validator: {"spearman_pooled", "spearman_per_run", "picked", "picked_overall", "n"}}
    plus "oracle" and "last": mean accuracy over runs of the checkpoint picked in each run, the
    best one, the last one; "picked_overall" and "oracle_overall": the accuracy of the one
    checkpoint picked among all runs' and of the best of them all."""
    per_run = {}
    for run in runs:
        records = [r for r in evaluations(run) if r.get(acc_key) is not None]
        if records:
            per_run[run] = records
    if not per_run:
        raise UserError(f"no run logs {acc_key}")
    result = {
        "accuracy": acc_key,
        "runs": len(per_run),
        "oracle": _mean([max(r[acc_key] for r in rec) for rec in per_run.values()]),
        "last": _mean([rec[-1][acc_key] for rec in per_run.values()]),
        "oracle_overall": max(r[acc_key] for rec in per_run.values() for r in rec),
        "validators": {},
    }
    for name, higher in HIGHER_IS_BETTER.items():
        key, sign = f"validator_{name}", 1 if higher else -1
        pooled_v, pooled_a, per, picked, oracle = [], [], [], [], []
        for rec in per_run.values():
            scored = [r for r in rec if key in r]
            if not scored:
                continue
            v, a = [sign * r[key] for r in scored], [r[acc_key] for r in scored]
            pooled_v += v
            pooled_a += a
            per.append(spearman(v, a))
            picked.append(a[max(range(len(v)), key=v.__getitem__)])
            oracle.append(max(a))
        if pooled_v:
            result["validators"][name] = {
                "spearman_pooled": spearman(pooled_v, pooled_a),
                "spearman_per_run": _mean(per),
                "picked": _mean(picked),
                # the best checkpoint of the same runs (a validator may not apply to every run)
                "oracle": _mean(oracle),
                "runs": len(picked),
                "picked_overall": pooled_a[max(range(len(pooled_v)), key=pooled_v.__getitem__)],
                "n": len(pooled_v),
            }
    return result


def by_target(runs: list[str]) -> dict[str, list[str]]:
    """Run folders grouped by the target in their config.json (in the order given)."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        cfg = _config(run)
        groups.setdefault(cfg.get("target", "?"), []).append(run)
    return groups


def _config(run: str) -> dict:
    try:
        return json.loads((Path(run) / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def below_source_only(result: dict, runs: list[str], acc_key: str) -> None:
    """Mark each validator's overall pick when it scores below the best source-only checkpoint
    of the group (in place: "below_source_only" True/False; absent without a source-only run)."""
    floors = [
        max(r[acc_key] for r in evaluations(run) if r.get(acc_key) is not None)
        for run in runs
        if _config(run).get("method") == "source-only"
    ]
    if not floors:
        return
    result["source_only"] = max(floors)
    for v in result["validators"].values():
        v["below_source_only"] = v["picked_overall"] < result["source_only"]


def scatter(groups: dict, acc_key: str, path: Path) -> None:
    """One panel per validator and pair: validator value against accuracy, every evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(HIGHER_IS_BETTER)
    fig, axes = plt.subplots(len(groups), len(names), figsize=(3 * len(names), 2.8 * len(groups)))
    axes = [axes] if len(groups) == 1 else axes
    for row, (target, runs) in zip(axes, groups.items()):
        for ax, name in zip(row, names):
            key = f"validator_{name}"
            for run in runs:
                pts = [(r[key], r[acc_key]) for r in evaluations(run) if key in r and acc_key in r]
                if pts:
                    ax.scatter(*zip(*pts), s=10, label=Path(run).name)
            way = "higher" if HIGHER_IS_BETTER[name] else "lower"
            ax.set(title=f"{target}: {name} ({way} better)", xlabel=name, ylabel=acc_key)
            ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown(studies: dict) -> str:
    """One table per pair: Spearman, the picked checkpoints' accuracy, oracle and last."""
    out = []
    for target, r in studies.items():
        floor = r.get("source_only")
        out.append(
            f"**MNIST → {target}**: {r['runs']} runs, oracle {100 * r['oracle']:.1f}, last "
            f"{100 * r['last']:.1f} (mean over runs); best of all {100 * r['oracle_overall']:.1f}"
            + (f"; best source-only {100 * floor:.1f}" if floor is not None else "")
            + "\n\n| validator | Spearman (pooled) | per run | pick per run (its runs' oracle) "
            "| pick of all | below source-only |\n|---|---|---|---|---|---|"
        )
        for name, v in r["validators"].items():
            below = v.get("below_source_only")
            out.append(
                f"| {name} | {_fmt(v['spearman_pooled'])} | {_fmt(v['spearman_per_run'])} | "
                f"{100 * v['picked']:.1f} ({100 * v['oracle']:.1f}) | "
                f"{100 * v['picked_overall']:.1f} | "
                f"{'—' if below is None else ('yes' if below else 'no')} |"
            )
        out.append("")
    return "\n".join(out)


def _fmt(v) -> str:
    return "—" if v is None else f"{v:+.2f}"


def report(result: dict) -> str:
    def fmt(v, pattern="{:+.2f}"):
        return "—" if v is None else pattern.format(v)

    lines = [
        (
            f"{result['runs']} runs; accuracy: {result['accuracy']}; oracle checkpoint "
            f"{fmt(result['oracle'], '{:.2%}')}, last checkpoint {fmt(result['last'], '{:.2%}')} "
            f"(mean over runs); best of all {fmt(result['oracle_overall'], '{:.2%}')}"
        ),
        (
            f"{'validator':<14} {'spearman pooled':>15} {'per run':>8} {'picked acc':>10} "
            f"{'oracle':>7} {'of all':>7} {'evals':>6}"
        ),
    ]
    for name, v in result["validators"].items():
        lines.append(
            f"{name:<14} {fmt(v['spearman_pooled']):>15} {fmt(v['spearman_per_run']):>8} "
            f"{fmt(v['picked'], '{:.2%}'):>10} {fmt(v['oracle'], '{:.2%}'):>7} "
            f"{fmt(v['picked_overall'], '{:.2%}'):>7} "
            f"{v['n']:>6}"
        )
    return "\n".join(lines)


@cli
def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--acc", default="", help="accuracy key (default: target_val_acc, else test)")
    p.add_argument("--json", default="", help="also write the result here")
    p.add_argument("--plot", default="", help="scatter plot PNG: validators against accuracy")
    p.add_argument("--markdown", default="", help="tables per pair, for docs and the README")
    args = p.parse_args(argv)
    acc = args.acc
    if not acc:
        logged = any("target_val_acc" in r for run in args.runs for r in evaluations(run))
        acc = "target_val_acc" if logged else "target_test_acc"
    runs = []
    for run in args.runs:  # a run still before its first evaluation is left out, with a note
        try:
            evaluations(run)
            runs.append(run)
        except UserError as e:
            print(f"note: skipped {e}", file=sys.stderr)
    groups = by_target(runs)
    studies = {}
    for target, runs in groups.items():
        studies[target] = study(runs, acc)
        below_source_only(studies[target], runs, acc)
        print(f"== target {target}\n{report(studies[target])}")
    if args.json:
        Path(args.json).write_text(json.dumps(studies, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(studies))
    if args.plot:
        scatter(groups, acc, Path(args.plot))
    return studies


if __name__ == "__main__":
    main()
