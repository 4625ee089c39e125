"""Benchmark every method on MNIST->MNIST-M (and MNIST->USPS when its files are there) over
several seeds, in-process through pixelda.train.main, next to the published numbers.

Usage: python tools/benchmark.py [--data-root DIR] [--methods ...] [--seeds 3]
       [--steps N | --minutes M] [--out benchmarks] [-- EXTRA TRAIN FLAGS]
"""

import dataclasses
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from . import benchmark_report, train
from .config import parse_train_args
from .errors import CliParser, UserError, cli

METHODS = ("source-only", "dann", "pixelda", "target-only")
# Config fields that may differ between a stored run and the same run asked for again.
IGNORED = {"overwrite", "resume", "progress"}


def parse_args(argv: list[str]):
    """The benchmark's own flags, and the training flags after `--`."""
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = CliParser(prog="python tools/benchmark.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-root",
        default="",
        help="folder with mnist/, bsds500/, usps/ "
        "(default: the small embedded data, for trying the command out)",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
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


def tasks(data_root: str) -> list[tuple[str, str, str]]:
    """(name, source, target): MNIST->MNIST-M always, MNIST->USPS if DIR/usps/usps.bz2 exists."""
    found = [("mnist->mnistm", "mnist", "mnistm")]
    if data_root and (Path(data_root).expanduser() / "usps" / "usps.bz2").is_file():
        found.append(("mnist->usps", "mnist", "usps"))
    return found


def run_argv(
    args, extra: list[str], *, source: str, target: str, method: str, seed: int, out: Path
) -> list[str]:
    """Extra flags first, so the benchmark's own (method, data, seed, budget) win."""
    argv = [
        *extra,
        "--method",
        method,
        "--source",
        source,
        "--target",
        target,
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    if args.data_root:
        argv += ["--data-root", args.data_root]
    if args.steps is not None:
        argv += ["--steps", str(args.steps)]
    if args.minutes is not None:
        argv += ["--max-minutes", str(args.minutes)]
    return argv


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_one(argv: list[str], out: Path) -> dict:
    """Train, or reuse a finished run of the same config in `out`, or resume its checkpoint.

    -> the run's summary; a failed run raises UserError."""
    wanted = dataclasses.asdict(parse_train_args(argv))
    stored = _read_json(out / "config.json") or {}
    same = {k: v for k, v in stored.items() if k not in IGNORED} == {
        k: v for k, v in wanted.items() if k not in IGNORED
    }
    summary = _read_json(out / "summary.json")
    if same and summary and summary.get("finished"):
        print(f"benchmark: reusing the finished run in {out}", file=sys.stderr)
        return summary
    if same and (out / "ckpt.pt").is_file():
        return _train([*argv, "--resume"])
    return _train([*argv, "--overwrite"] if out.is_dir() and any(out.iterdir()) else argv)


def _train(argv: list[str]) -> dict:
    try:
        return train.main(argv)
    except SystemExit as e:  # train.main's UserError, already reported on stderr
        raise UserError(f"training failed (exit {e.code}): {shlex.join(argv)}") from None


def run_all(args, extra: list[str]) -> tuple[list[dict], bool]:
    """Every (task, method, seed) in turn -> (per-run records, stopped by Ctrl-C)."""
    work = Path(args.work or Path(args.out) / "runs")
    records = []
    for task, source, target in tasks(args.data_root):
        for method in args.methods:
            for seed in range(args.seeds):
                out = work / task.replace("->", "-to-") / method / f"seed{seed}"
                argv = run_argv(
                    args, extra, source=source, target=target, method=method, seed=seed, out=out
                )
                record = {"task": task, "method": method, "seed": seed, "run": str(out)}
                try:
                    record["summary"] = run_one(argv, out)
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
        "command": shlex.join(["python", "tools/benchmark.py", *argv]),
        "data_root": args.data_root or "embedded",
        "seeds": args.seeds,
        "budget": _budget(args),
        "extra_flags": extra,
        "complete": not stopped,
        "hardware": benchmark_report.hardware(),
        "tasks": benchmark_report.aggregate(records),
        "paper": benchmark_report.PAPER,
        "runs": records,
    }
    benchmark_report.write(results, Path(args.out))
    print(
        f"benchmark: {len(records)} runs; results in {args.out}/results.md"
        + (" (stopped early: partial)" if stopped else ""),
        file=sys.stderr,
    )
    return results


if __name__ == "__main__":
    main()
