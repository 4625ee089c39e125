"""`python -m pixelda.evaluate --checkpoint RUN/best.pt [--data SPEC] [--split auto|test|val]`:
score a checkpoint's classifier on labeled data (code: pixelda/evaluation.py, pixelda/cli.py).

In Python, call pixelda.evaluate(checkpoint, **options); this file is the command only.
"""

from pixelda.errors import start_command

# Imported: an ImportError. Run: Ctrl-C while torch loads (seconds) is one line and exit 130.
start_command(
    __name__,
    "pixelda.evaluate",
    "pixelda.evaluate(checkpoint, ...) or pixelda.cli.evaluate_main(argv)",
)

from pixelda.cli import evaluate_main

evaluate_main()
