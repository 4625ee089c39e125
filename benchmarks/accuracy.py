"""Table 1: every method on MNIST->MNIST-M (and MNIST->USPS where its files are) over several
seeds, through the Python API, beside the published numbers. Scored on the target's validation
split; on its test split too where one exists.

Usage: python benchmarks/accuracy.py (or tools/benchmark.py) [--data-root DIR] [--methods ...]
       [--seeds 3] [--steps N | --minutes M] [--out benchmarks] [-- EXTRA TRAIN FLAGS]
"""

import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402  (benchmarks/report.py)
from common import run_one, split_argv  # noqa: E402  (benchmarks/common.py)

from pixelda.errors import CliParser, UserError, cli  # noqa: E402
from pixelda.flags import train_parser  # noqa: E402

METHODS = ("source-only", "dann", "pixelda", "target-only")
TASKS = ("mnist->mnistm", "mnist->usps")


def parse_args(argv: list[str]):
    """The benchmark's own flags, and the training flags after `--`."""
    argv, extra = split_argv(argv)
    p = CliParser(prog="python tools/benchmark.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-root",
        default="",
        help="folder with mnist/, bsds500/, usps/ "
        "(default: the small embedded data, for trying the command out)",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument(
        "--tasks",
        nargs="+",
        default=list(TASKS),
        choices=TASKS,
        help="which pairs (default: both; MNIST->USPS only where DIR/usps/usps.bz2 exists)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per method (default 3)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="training steps per run (default: preset's)")
    budget.add_argument(
        "--minutes",
        type=float,
        help="wall-clock minutes per run "
        "(--max-minutes; steps stay the preset's and cap the run too)",
    )
    p.add_argument(
        "--out", default="benchmarks", help="results.{md,json,png} (default %(default)s)"
    )
    p.add_argument("--work", default="", help="run directories (default: OUT/runs)")
    args = p.parse_args(argv)
    if (
        args.seeds < 1
        or (args.steps is not None and args.steps < 1)
        or (args.minutes is not None and args.minutes <= 0)
    ):
        p.error("--seeds and --steps must be positive, --minutes above 0")
    return args, extra


def tasks(data_root: str, wanted=TASKS) -> list[tuple[str, str, str]]:
    """(name, source, target): MNIST->MNIST-M, and MNIST->USPS if DIR/usps/usps.bz2 exists."""
    found = [("mnist->mnistm", "mnist", "mnistm")]
    if data_root and (Path(data_root).expanduser() / "usps" / "usps.bz2").is_file():
        found.append(("mnist->usps", "mnist", "usps"))
    return [t for t in found if t[0] in wanted]


def run_overrides(
    args, extra: list[str], *, source: str, target: str, method: str, seed: int, out: Path
) -> dict:
    """The run's config fields: the extra flags, then the benchmark's own (method, data, seed,
    budget), which win."""
    overrides = vars(train_parser().parse_args(extra))
    overrides.update(method=method, source=source, target=target, seed=seed, out=str(out))
    if args.data_root:
        overrides["data_root"] = args.data_root
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.minutes is not None:
        overrides["max_minutes"] = float(args.minutes)
    return overrides


def run_all(args, extra: list[str]) -> tuple[list[dict], bool]:
    """Every (task, method, seed) in turn -> (per-run records, stopped by Ctrl-C)."""
    work = Path(args.work or Path(args.out) / "runs")
    records = []
    for task, source, target in tasks(args.data_root, args.tasks):
        for method in args.methods:
            for seed in range(args.seeds):
                out = work / task.replace("->", "-to-") / method / f"seed{seed}"
                overrides = run_overrides(
                    args, extra, source=source, target=target, method=method, seed=seed, out=out
                )
                record = {"task": task, "method": method, "seed": seed, "run": str(out)}
                try:
                    record["summary"] = run_one(overrides, out)
                except UserError as e:
                    print(f"benchmark: {e}", file=sys.stderr)
                    record["error"] = str(e)
                records.append(record)
                if not record.get("summary", {}).get("finished", True):
                    return records, True  # Ctrl-C: keep what is done, write partial results
    return records, False


def _budget(args) -> str:
    if args.minutes is not None:
        return f"{args.minutes:g} min wall clock (--max-minutes)"
    return f"{args.steps} steps" if args.steps is not None else "the preset's steps"


@cli
def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args, extra = parse_args(argv)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records, stopped = run_all(args, extra)
    results = {
        "date": date,
        "command": shlex.join(["python", "benchmarks/accuracy.py", *argv]),
        "data_root": args.data_root or "embedded",
        "seeds": args.seeds,
        "budget": _budget(args),
        "extra_flags": extra,
        "complete": not stopped,
        "hardware": report.hardware(),
        "tasks": report.aggregate(records),
        "paper": report.PAPER,
        "runs": records,
    }
    report.write(results, Path(args.out))
    print(
        f"benchmark: {len(records)} runs; results in {args.out}/results.md"
        + (" (stopped early: partial)" if stopped else ""),
        file=sys.stderr,
    )
    return results


if __name__ == "__main__":
    main()
