"""The command-line entry points, each a thin parser over the layers below: python -m
pixelda.train, python -m pixelda.evaluate, python -m pixelda.select, tools/export_adapted.py (and
the console scripts pixelda-train, pixelda-evaluate, pixelda-select, pixelda-export).

Each main(argv) returns what it printed as data, for tests and scripts; a UserError exits 2 with
one line, Ctrl-C exits 130 (errors.cli)."""

import argparse
import json
import sys
from pathlib import Path

from . import distributed
from .errors import CliParser, UserError, cli
from .evaluation import EvaluateConfig, evaluate_checkpoint
from .exporting import ExportConfig, check_config, export_config
from .flags import build_parser, train_parser
from .selection import DEFAULT, HIGHER_IS_BETTER, select, summary, table
from .training import config_from_overrides, train_config


@cli
def train_main(argv: list[str] | None = None) -> dict:
    """python -m pixelda.train [flags] -> the run's summary."""
    try:
        return train_config(*config_from_overrides(vars(train_parser().parse_args(argv))))
    finally:
        distributed.shutdown()


@cli
def export_main(argv: list[str] | None = None) -> dict:
    """python tools/export_adapted.py [flags] -> the export's manifest."""
    parser = build_parser(
        ExportConfig,
        prog="python tools/export_adapted.py",
        description="Write an adapted, labeled dataset from a trained generator.",
    )
    cfg = check_config(ExportConfig(**vars(parser.parse_args(argv))))
    try:
        return export_config(cfg)
    except KeyboardInterrupt:
        out = Path(cfg.out).expanduser().resolve()
        print(f"interrupted: nothing was written to {out}", file=sys.stderr)
        raise SystemExit(130) from None
    except OSError as e:  # disk full, permission denied: the staging folder is already gone
        out = Path(cfg.out).expanduser()
        raise UserError(
            f"--out: cannot write {e.filename or out}: {e.strerror or e}; {out} was left as it was"
        ) from None
    finally:
        distributed.shutdown()


@cli
def evaluate_main(argv: list[str] | None = None) -> dict:
    """python -m pixelda.evaluate --checkpoint CKPT [flags] -> the scores, also printed as JSON."""
    parser = build_parser(
        EvaluateConfig,
        prog="python -m pixelda.evaluate",
        description="Score a checkpoint's classifier on labeled data.",
    )
    result = evaluate_checkpoint(EvaluateConfig(**vars(parser.parse_args(argv))))
    if "acc" in result:
        per_class = result.get("acc_per_class") or {}
        worst = min(per_class, key=per_class.get) if per_class else None
        lowest = f" (lowest: class {worst}, {per_class[worst]:.2%})" if worst else ""
        print(
            f"{result['data']} ({result['split']}, {result['n']} images): "
            f"accuracy {result['acc']:.2%}{lowest}",
            file=sys.stderr,
        )
    print(json.dumps(result))
    return result


def select_parser() -> argparse.ArgumentParser:
    p = CliParser(
        prog="python -m pixelda.select",
        description="Rank runs and checkpoints by a label-free validator (no target labels).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (--out of pixelda.train)")
    p.add_argument(
        "--by",
        default=DEFAULT,
        help=f"validator: {', '.join(HIGHER_IS_BETTER)} (default: {DEFAULT})",
    )
    return p


@cli
def select_main(argv: list[str] | None = None) -> list[dict]:
    """python -m pixelda.select RUN [RUN ...] [--by NAME] -> the ranked checkpoints."""
    args = select_parser().parse_args(argv)
    rows = select(args.runs, by=args.by)
    print(table(rows, args.by))
    print(summary(rows, args.by))
    return rows


# Console scripts (pyproject.toml): the same commands, returning an exit status.
def train_command() -> int:
    """pixelda-train: exit 0 when the run finished, 130 when Ctrl-C stopped it."""
    return 0 if train_main()["finished"] else 130


def export_command() -> int:
    export_main()
    return 0


def evaluate_command() -> int:
    evaluate_main()
    return 0


def select_command() -> int:
    select_main()
    return 0
