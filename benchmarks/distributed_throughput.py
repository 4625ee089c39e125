"""Training throughput under torchrun: the same run on 1, 2, ... processes.

Usage: python benchmarks/distributed_throughput.py [--procs 1 2] [--steps 60] [--preset fast]
       [--device cpu] [--threads-per-proc 1] [-- extra pixelda.train flags]

Each process count trains a fresh run on the embedded data (its --batch-size per process, so
N processes train on N times the images per step) and the line printed is that run's own
summary.json: global source images/s over its training steps, and seconds per step.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(procs: int, args, extra: list[str], out: Path) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads_per_proc),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc-per-node={procs}", "-m", "pixelda.train", "--out", str(out)]
    cmd += ["--preset", args.preset, "--steps", str(args.steps), "--device", args.device]
    cmd += ["--no-progress", "--eval-every", "100000", "--sample-every", "100000"]
    cmd += ["--checkpoint-every", "100000", *extra]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads-per-proc", type=int, default=1)
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        for procs in args.procs:
            s = run(procs, args, extra, Path(tmp) / f"p{procs}")
            per_step = s["train_s"] / s["steps"]
            print(
                f"{procs} process(es) x {args.threads_per_proc} thread(s), {args.preset}: "
                f"{s['source_images_per_s']:.1f} source images/s, {per_step * 1000:.0f} ms "
                f"per step ({s['steps']} steps; the final evaluation not counted)"
            )


if __name__ == "__main__":
    main()
