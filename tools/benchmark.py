"""Table 1: source-only, DANN, PixelDA and target-only beside the published numbers.

Usage: python tools/benchmark.py --data-root ../shared/data [--seeds 3] [--steps N | --minutes M]
       [--methods ...] [--out benchmarks] [-- --preset fast ...]
The harness is benchmarks/accuracy.py; this is its name on the command line.
"""

import runpy
from pathlib import Path

if __name__ == "__main__":
    harness = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
    runpy.run_path(str(harness), run_name="__main__")
