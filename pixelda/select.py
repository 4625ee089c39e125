"""`python -m pixelda.select RUN [RUN ...] [--by im_kept]`: rank runs and checkpoints by a label-free
validator and flag generators that stopped keeping labels (code: pixelda/selection.py).

In Python, call pixelda.select(runs, by=...); this file is the command only.
"""

from pixelda.errors import start_command

# Imported: an ImportError. Run: Ctrl-C while torch loads (seconds) is one line and exit 130.
start_command(
    __name__, "pixelda.select", "pixelda.select(runs, by=...) or pixelda.cli.select_main(argv)"
)

from pixelda.cli import select_main

select_main()
