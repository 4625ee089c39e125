"""Write an adapted, labeled, target-style dataset from a trained PixelDA generator.

Usage: python tools/export_adapted.py --checkpoint runs/pixelda/ckpt.pt --out adapted [--help]
"""

import sys
from pathlib import Path

# Run from a checkout without installing: the package sits one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelda.export import main

if __name__ == "__main__":
    main()
