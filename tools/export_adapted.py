"""Write an adapted, labeled, target-style dataset from a trained PixelDA generator.

Usage: python tools/export_adapted.py --checkpoint runs/pixelda/ckpt.pt --out adapted [--help]
"""

import sys
from pathlib import Path

# Run from a checkout without installing: the package sits one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelda.errors import exit_130_on_ctrl_c  # noqa: E402 (light: no torch)

exit_130_on_ctrl_c()  # Ctrl-C while torch loads (seconds): one line and exit 130

from pixelda.export import main  # noqa: E402

if __name__ == "__main__":
    main()
