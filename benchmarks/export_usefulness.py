"""Is the exported dataset worth what the run reports? For each pair: a PixelDA run, its export
(tools/export_adapted.py on the run folder: best.pt), then fresh classifiers trained only on the
export, (a) T's architecture and (b) a torchvision ResNet-18 at 32x32, scored on the target's
validation split beside the run's own T and a source-only run. Everything through the Python
API; runs already finished with the same config are reused.

Usage: python benchmarks/export_usefulness.py --data-root ../shared/data [--pairs mnistm usps]
       [--steps 1500] [--fresh-steps 1500] [--resnet-steps 600] [--variants 1] [--checkpoint best|last]
       [--out benchmarks/export_usefulness] [-- EXTRA PIXELDA FLAGS]
Writes OUT/results.json and OUT/results.md (a table with the commands).
"""

import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import read_json, run_one, split_argv

import pixelda
from pixelda.errors import CliParser, UserError, cli
from pixelda.flags import train_parser
from pixelda.runtime import hardware

PAIRS = ("mnistm", "usps")
HEADER = (
    "| MNIST → | PixelDA's T | fresh T architecture on the export "
    "| fresh ResNet-18 on the export | source-only |"
)


def parse_args(argv: list[str]):
    argv, extra = split_argv(argv)
    p = CliParser(
        prog="python benchmarks/export_usefulness.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--data-root", required=True, help="folder with mnist/, mnist_m/, usps/ ...")
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=PAIRS, help="MNIST -> ...")
    p.add_argument("--steps", type=int, default=1500, help="PixelDA and source-only steps")
    p.add_argument(
        "--fresh-steps",
        type=int,
        default=1500,
        help="steps of each classifier trained on the export",
    )
    p.add_argument(
        "--resnet-steps",
        type=int,
        default=600,
        help="steps of the ResNet-18 (about 1 s a step on one CPU core at 32 px)",
    )
    p.add_argument("--variants", type=int, default=1, help="adapted images per source image")
    p.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="export best.pt (the default of tools/export_adapted.py on a run folder) or ckpt.pt",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="benchmarks/export_usefulness")
    args = p.parse_args(argv)
    train_parser().parse_args(extra)  # a bad training flag fails now, not after an hour
    return args, extra


def extra_overrides(extra: list[str]) -> dict:
    return vars(train_parser().parse_args(extra))


def val_acc(summary: dict) -> float | None:
    """The validation accuracy of the checkpoint a run keeps (best.pt), else of its last step."""
    best = summary.get("best") or {}
    if best.get("metric") == "target_val_acc":
        return best["value"]
    return summary.get("target_val_acc")


def one_pair(target: str, args, extra: dict, work: Path) -> dict:
    common = {"data_root": args.data_root, "target": target, "seed": args.seed, "progress": False}
    common.update({"threads": args.threads} if args.threads else {})
    run_dir = work / f"pixelda-{target}"
    pixelda_summary = run_one(
        {**common, **extra, "steps": args.steps, "out": str(run_dir)}, run_dir
    )
    src_dir = work / f"source-only-{target}"
    source_only = run_one(
        {**common, "method": "source-only", "steps": args.steps, "out": str(src_dir)}, src_dir
    )
    ckpt = run_dir / ("best.pt" if args.checkpoint == "best" else "ckpt.pt")
    export_dir = work / f"export-{target}-{args.checkpoint}-v{args.variants}"
    start = time.perf_counter()
    pixelda.export(
        ckpt, export_dir, variants=args.variants, overwrite=export_dir.exists(), progress=False
    )
    export_s = time.perf_counter() - start
    meta = read_json(export_dir / "manifest.json")
    fresh = {}
    for backbone in ("tower", "resnet18"):
        out = work / f"fresh-{backbone}-{target}-{args.checkpoint}-v{args.variants}"
        overrides = {
            **common,
            "method": "source-only",
            "source": f"folder:{export_dir}",
            "backbone": backbone,
            "steps": args.fresh_steps if backbone == "tower" else args.resnet_steps,
            "out": str(out),
        }
        fresh[backbone] = val_acc(run_one(overrides, out))
    return {
        "target": target,
        "pixelda_T_val_acc": val_acc(pixelda_summary),
        "exported_step": meta["checkpoint_step"],
        "exported_scores": {
            k: v for k, v in meta["checkpoint_scores"].items() if k == "target_val_acc"
        },
        "source_only_val_acc": val_acc(source_only),
        "fresh_tower_val_acc": fresh["tower"],
        "fresh_resnet18_val_acc": fresh["resnet18"],
        "export_images": meta["count"],
        "export_s": round(export_s, 1),
    }


def table(rows: list[dict], command: str, when: str) -> str:
    def pct(v):
        return "—" if v is None else f"{100 * v:.1f}"

    lines = [
        "| MNIST → | PixelDA's T | fresh T architecture on the export "
        + "| fresh ResNet-18 on the export | source-only |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {pct(r['pixelda_T_val_acc'])} | {pct(r['fresh_tower_val_acc'])} "
            f"| {pct(r['fresh_resnet18_val_acc'])} | {pct(r['source_only_val_acc'])} |"
        )
    return (
        "Validation accuracy (%, 1,000 labeled target images held out of the target's training "
        "split), one seed.\n\n" + "\n".join(lines) + f"\n\n`{command}`  \n{hardware()}, {when}\n"
    )


@cli
def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    args, extra = parse_args(argv)
    out = Path(args.out)
    if not Path(args.data_root).is_dir():
        raise UserError(f"--data-root: {args.data_root} is not a folder")
    rows = [one_pair(t, args, extra_overrides(extra), out / "runs") for t in args.pairs]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    command = "python benchmarks/export_usefulness.py " + shlex.join(argv)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "results.md").write_text(table(rows, command, when))
    print(table(rows, command, when))
    return rows


if __name__ == "__main__":
    main()
