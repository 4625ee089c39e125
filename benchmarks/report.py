"""The accuracy benchmark's outputs: per-seed results aggregated, next to the published numbers,
as results.json, results.md and a bar chart results.png."""

import io
import os
import platform
import statistics
from pathlib import Path

import torch

from pixelda import __version__
from pixelda.fileio import atomic_write_bytes, atomic_write_json
from pixelda.runtime import cpu_name

# Bousmalis et al. 2017, Table 1: held-out target accuracy (%) on the two MNIST tasks.
PAPER = {
    "mnist->mnistm": {
        "source-only": 63.6,
        "dann": 77.4,
        "dsn": 83.2,
        "pixelda": 98.2,
        "target-only": 96.4,
    },
    "mnist->usps": {
        "source-only": 78.9,
        "dann": 85.1,
        "dsn": 91.3,
        "pixelda": 95.9,
        "target-only": 96.5,
    },
}
TITLES = {"mnist->mnistm": "MNIST → MNIST-M", "mnist->usps": "MNIST → USPS"}
PAPER_ONLY = ("dsn",)  # in the paper's table, not implemented here


def hardware() -> dict:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch_version": torch.__version__,
        "pixelda_version": __version__,
        "python": platform.python_version(),
    }


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (0 for a single value); None for no values."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: list[dict]) -> dict:
    """{task: {method: {acc_mean, acc_std (percent), seeds, steps, wall_s, ...}}} from runs,
    each {"task", "method", "seed", "summary" or "error"}; failed runs count in `failed`."""
    table: dict = {}
    for r in runs:
        table.setdefault(r["task"], {}).setdefault(r["method"], []).append(r)
    out = {}
    for task, methods in table.items():
        out[task] = {}
        for method, rs in methods.items():
            ok = [r["summary"] for r in rs if "summary" in r]
            val = [100 * s["target_val_acc"] for s in ok if s.get("target_val_acc") is not None]
            test = [100 * s["target_test_acc"] for s in ok if s.get("target_test_acc") is not None]
            (mean, std), (test_mean, test_std) = _mean_std(val), _mean_std(test)
            out[task][method] = {
                "acc_mean": mean,  # validation accuracy: what every choice is made on
                "acc_std": std,
                "test_acc_mean": test_mean,  # only where the target has a test split
                "test_acc_std": test_std,
                "seeds": [r["seed"] for r in rs if "summary" in r],
                "failed": len(rs) - len(ok),
                "steps": [s["steps"] for s in ok],
                "wall_s_mean": _mean_std([s["wall_s"] for s in ok])[0],
                "train_s_mean": _mean_std([s["train_s"] for s in ok])[0],
                "device": sorted({s["device"] for s in ok}),
                "paper": PAPER.get(task, {}).get(method),
            }
    return out


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def _pct(mean, std) -> str:
    return "—" if mean is None else f"{mean:.1f} ± {std:.1f}"


def markdown(results: dict) -> str:
    """results.md: one table per task, ours (mean ± std over seeds) beside the paper."""
    hw, budget = results["hardware"], results["budget"]
    lines = [
        "# pixelda benchmark",
        "",
        f"- date: {results['date']}",
        f"- command: `{results['command']}`",
        f"- data: {results['data_root']}",
        (
            f"- budget per run: {budget}; seeds: {results['seeds']}; extra flags: "
            f"`{' '.join(results['extra_flags']) or 'none'}`"
        ),
        f"- hardware: {hw['cpu']} ({hw['cpu_count']} CPUs, {hw['torch_threads']} torch threads)"
        + (f", GPU {hw['gpu']}" if hw["gpu"] else "")
        + f"; torch {hw['torch_version']}, pixelda {hw['pixelda_version']}",
        (
            "- ours: target validation accuracy (%) at the end of each run: 1,000 labeled images "
            "held out of the target's training split (--val-size), never trained on, eval mode; "
            "mean ± sample std over seeds. Test accuracy only where the target has a test split. "
            "Paper: Bousmalis et al. 2017, Table 1 (test splits; their budgets and models)."
        ),
        "",
    ]
    for task, methods in results["tasks"].items():
        lines += [
            f"## {TITLES.get(task, task)}",
            "",
            "| method | ours, validation (%) | ours, test (%) | paper (%) | seeds | steps "
            "| wall time / run | device |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, r in methods.items():
            steps = sorted(set(r["steps"]))
            failed = f" ({r['failed']} failed)" if r["failed"] else ""
            lines.append(
                f"| {method} | {_pct(r['acc_mean'], r['acc_std'])} | "
                f"{_pct(r['test_acc_mean'], r['test_acc_std'])} | {r['paper'] or '—'} | "
                f"{len(r['seeds'])}{failed} | {', '.join(map(str, steps)) or '—'} | "
                f"{_duration(r['wall_s_mean'])} | {', '.join(r['device']) or '—'} |"
            )
        for method in PAPER_ONLY:
            if method in PAPER.get(task, {}):
                lines.append(
                    f"| {method} (not run) | — | — | {PAPER[task][method]} | — | — | — | — |"
                )
        lines.append("")
    return "\n".join(lines)


def save_chart(results: dict, path: Path) -> None:
    """Grouped bars per task: ours (mean, std as error bar) beside the paper's number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = results["tasks"]
    fig, axes = plt.subplots(
        1, max(1, len(tasks)), figsize=(6 * max(1, len(tasks)), 4), squeeze=False
    )
    for ax, (task, methods) in zip(axes[0], tasks.items()):
        names = list(methods)
        x = range(len(names))
        ours = [methods[n]["acc_mean"] or 0.0 for n in names]
        errs = [methods[n]["acc_std"] or 0.0 for n in names]
        paper = [methods[n]["paper"] or 0.0 for n in names]
        ax.bar([i - 0.2 for i in x], ours, 0.4, yerr=errs, capsize=3, label="ours (validation)")
        ax.bar([i + 0.2 for i in x], paper, 0.4, label="paper (Bousmalis et al. 2017)")
        ax.set_xticks(list(x), names, rotation=15)
        # headroom above 100 keeps the legend off the bars
        ax.set(title=TITLES.get(task, task), ylabel="target accuracy (%)", ylim=(0, 118))
        ax.set_yticks(range(0, 101, 20))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write(results: dict, out: Path) -> None:
    """results.json, results.md and results.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "results.md", markdown(results).encode())
    save_chart(results, out / "results.png")
