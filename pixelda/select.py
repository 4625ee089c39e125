"""`python -m pixelda.select RUN [RUN ...] [--by im]`: rank runs and checkpoints by a label-free
validator and flag generators that stopped keeping labels (code: pixelda/selection.py).

In Python, call pixelda.select(runs, by=...); this file is the command only.
"""

if __name__ != "__main__":
    raise ImportError(
        "pixelda.select is the command `python -m pixelda.select`; in Python use "
        "pixelda.select(runs, by=...) or pixelda.cli.select_main(argv)"
    )

from pixelda.cli import select_main

select_main()
