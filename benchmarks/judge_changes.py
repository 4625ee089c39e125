"""How often a PixelDA run's generator changes a digit's class, as its semantic-consistency judge
reads it, and how sure the judge is of the new class.

Usage: python benchmarks/judge_changes.py --data-root ../shared/data RUN/ckpt.pt [RUN/ckpt.pt ...]
       [--images 1000] [--threads 1]
For each checkpoint (one trained with --consistency-weight > 0 and the source or recoloured
judge): the first --images source test images, adapted by G in eval mode with one fixed noise
draw; the share whose class the judge reads differently from their sources' (changed), and the
quantiles of the judge's probability of the new class over those images (what
--consistency-changed-confidence compares).
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelda import data  # noqa: E402
from pixelda.checkpoint import load  # noqa: E402
from pixelda.data.common import to_float  # noqa: E402
from pixelda.helpers import uniform_noise  # noqa: E402
from pixelda.methods import restore  # noqa: E402
from pixelda.methods.pixelda import SOURCE_JUDGE, adapt  # noqa: E402

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def judge_changes(path: str, data_root: str, n: int) -> dict:
    cfg, info, models = restore(load(path))
    if SOURCE_JUDGE not in models:
        raise SystemExit(f"{path}: no source judge (--consistency-judge source or recoloured)")
    opts = data.DataOptions.of_run(cfg, info.image_size, data_root=data_root)
    source = data.load(cfg.source, "test", opts, channels=info.channels)
    x = to_float(source.images[:n])
    z = uniform_noise((len(x), cfg.latent_dim), generator=torch.Generator().manual_seed(0))
    judge = models[SOURCE_JUDGE]
    with torch.inference_mode():
        probs_fake = judge(adapt(models["generator"], x, z)).float().softmax(1)
        read_src = judge(x).argmax(1)
    sure, read_fake = probs_fake.max(1)
    changed = read_fake != read_src
    picked = sure[changed]
    quantiles = picked.quantile(torch.tensor(QUANTILES)).tolist() if len(picked) else []
    return {
        "images": len(x),
        "changed": int(changed.sum()),
        "above_0.9": int((picked > 0.9).sum()),
        "quantiles": quantiles,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data-root", default="")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    qs = "/".join(f"{q:g}" for q in QUANTILES)
    head = f"the judge's probability of the new class, quantiles {qs}"
    print(f"| checkpoint | changed | {head} | above 0.9 |")
    print("| --- | --- | --- | --- |")
    for path in args.checkpoints:
        r = judge_changes(path, args.data_root, args.images)
        cells = ", ".join(f"{q:.2f}" for q in r["quantiles"]) or "—"
        share = f"{r['changed']} of {r['images']} ({100 * r['changed'] / r['images']:.1f} %)"
        print(f"| {path} | {share} | {cells} | {r['above_0.9']} |")


if __name__ == "__main__":
    main()
