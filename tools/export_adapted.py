"""Write an adapted, labeled, target-style dataset from a trained PixelDA generator.

Usage: python tools/export_adapted.py --checkpoint runs/pixelda/best.pt --out adapted [--help]
"""

import sys
from pathlib import Path

# Run from a checkout without installing: the package sits one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelda.errors import exit_130_on_ctrl_c

exit_130_on_ctrl_c()  # Ctrl-C while torch loads (seconds): one line and exit 130

from pixelda.cli import export_main

if __name__ == "__main__":
    export_main()
