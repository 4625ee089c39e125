"""`python -m pixelda.export --checkpoint RUN/best.pt --out DIR`: the same command as
tools/export_adapted.py (code: pixelda/exporting.py, pixelda/cli.py).

In Python, call pixelda.export(checkpoint, out, **options); this file is the command only.
"""

if __name__ != "__main__":
    raise ImportError(
        "pixelda.export is the command `python -m pixelda.export`; in Python use "
        "pixelda.export(checkpoint, out, ...) or pixelda.cli.export_main(argv)"
    )

from pixelda.errors import exit_130_on_ctrl_c

exit_130_on_ctrl_c()  # Ctrl-C while torch loads (seconds): one line and exit 130

from pixelda.cli import export_main

export_main()
