"""`python -m pixelda.evaluate --checkpoint RUN/best.pt [--data SPEC] [--split auto|test|val]`:
score a checkpoint's classifier on labeled data (code: pixelda/evaluation.py, pixelda/cli.py).

In Python, call pixelda.evaluate(checkpoint, **options); this file is the command only.
"""

if __name__ != "__main__":
    raise ImportError(
        "pixelda.evaluate is the command `python -m pixelda.evaluate`; in Python use "
        "pixelda.evaluate(checkpoint, ...) or pixelda.cli.evaluate_main(argv)"
    )

from pixelda.errors import exit_130_on_ctrl_c

exit_130_on_ctrl_c()  # Ctrl-C while torch loads (seconds): one line and exit 130

from pixelda.cli import evaluate_main

evaluate_main()
