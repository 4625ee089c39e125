"""Benchmark source-only, DANN, PixelDA and target-only against the published numbers.

Usage: python tools/benchmark.py --data-root ../shared/data [--seeds 3] [--steps N | --minutes M]
       [--methods ...] [--out benchmarks] [-- --preset fast ...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from pixelda.benchmark import main

if __name__ == "__main__":
    main()
