"""`python -m pixelda.export --checkpoint RUN/best.pt --out DIR`: the same command as
tools/export_adapted.py (code: pixelda/exporting.py, pixelda/cli.py).

In Python, call pixelda.export(checkpoint, out, **options); this file is the command only.
"""

from pixelda.errors import start_command

# Imported: an ImportError. Run: Ctrl-C while torch loads (seconds) is one line and exit 130.
start_command(
    __name__,
    "pixelda.export",
    "pixelda.export(checkpoint, out, ...) or pixelda.cli.export_main(argv)",
)

from pixelda.cli import export_main

export_main()
