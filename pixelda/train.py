"""`python -m pixelda.train`: train PixelDA or a baseline (flags: --help; code: pixelda/cli.py).

In Python, call pixelda.train(**options) or pixelda.cli.train_main(argv); this file is the
command only, so it refuses to be imported (which would hide the function pixelda.train).
"""

from pixelda.errors import start_command

# Imported: an ImportError. Run: Ctrl-C while torch loads (seconds) is one line and exit 130.
start_command(__name__, "pixelda.train", "pixelda.train(**options) or pixelda.cli.train_main(argv)")

from pixelda.cli import train_main

# Ctrl-C saves a checkpoint and exits 130 (128 + SIGINT, as shells report it), so a script can
# tell a stopped run from a finished one; --max-minutes is a finished run (exit 0).
raise SystemExit(0 if train_main()["finished"] else 130)
