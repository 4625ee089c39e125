"""`python -m pixelda.train`: train PixelDA or a baseline (flags: --help; code: pixelda/cli.py).

In Python, call pixelda.train(**options) or pixelda.cli.train_main(argv); this file is the
command only, so it refuses to be imported (which would hide the function pixelda.train).
"""

if __name__ != "__main__":
    raise ImportError(
        "pixelda.train is the command `python -m pixelda.train`; in Python use "
        "pixelda.train(**options) or pixelda.cli.train_main(argv)"
    )

from pixelda.errors import exit_130_on_ctrl_c

exit_130_on_ctrl_c()  # Ctrl-C while torch loads (seconds): one line and exit 130

from pixelda.cli import train_main

# Ctrl-C saves a checkpoint and exits 130 (128 + SIGINT, as shells report it), so a script can
# tell a stopped run from a finished one; --max-minutes is a finished run (exit 0).
raise SystemExit(0 if train_main()["finished"] else 130)
