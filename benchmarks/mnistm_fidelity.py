"""How faithful is the MNIST-M recipe? PixelDA trained with the recipe (built from BSDS500) as
its target and with Ganin's release as its target, same settings and budget, both scored on the
release's validation split.

Usage: python benchmarks/mnistm_fidelity.py --data-root ../shared/data [--steps 1500]
       [--seeds 1] [--out /tmp/fidelity] [--release-runs RUN ...] [-- extra training flags]
--release-runs reuses finished runs against the release (one per seed, e.g. the accuracy
benchmark's pixelda runs, when they had the same settings) instead of training them again.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import read_json, run_one, split_argv  # noqa: E402  (benchmarks/common.py)

import pixelda  # noqa: E402
from pixelda.data import DataOptions, load, split_validation  # noqa: E402
from pixelda.flags import train_parser  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    argv, extra = split_argv(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--out", default="/tmp/pixelda-fidelity")
    p.add_argument("--release-runs", nargs="*", default=[])
    args = p.parse_args(argv)
    root = Path(args.data_root).expanduser()
    photos = str(root / "bsds500" / "images" / "train")
    overrides = vars(train_parser().parse_args(extra))
    rows = []
    for seed in range(args.seeds):
        for target, extra_opts in (("release", {}), ("recipe", {"photos": photos})):
            out = Path(args.out) / f"{target}-seed{seed}"
            if target == "release" and seed < len(args.release_runs):
                out = Path(args.release_runs[seed])
            else:  # reuses a finished run of the same config
                run_one(
                    {
                        **overrides,
                        **extra_opts,
                        "data_root": str(root),
                        "steps": args.steps,
                        "seed": seed,
                        "out": str(out),
                        "progress": False,
                    },
                    out,
                )
            checkpoint = out / "ckpt.pt"
            adapter = pixelda.load(checkpoint)
            opts = DataOptions(data_root=str(root), image_size=adapter.image_size)
            _, val = split_validation(load("mnistm", "train", opts), adapter.cfg.val_size)
            acc = (adapter.classify(val.images) == val.labels).float().mean().item()
            own = read_json(out / "summary.json")["target_val_acc"]
            rows.append({"target": target, "seed": seed, "release_val_acc": acc, "own": own})
            print(
                f"{target} seed {seed}: release validation {acc:.2%} (its own validation "
                f"split {own:.2%})",
                flush=True,
            )
    print("| trained against | seed | accuracy on the release's validation split |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['seed']} | {r['release_val_acc']:.2%} |")
    return rows


if __name__ == "__main__":
    main()
