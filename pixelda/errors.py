"""User-facing errors: one line on stderr and exit code 2, never a traceback."""

import argparse
import functools
import sys


class UserError(Exception):
    """Bad input from the user (a flag, a path, a file); the message names it."""


class CliParser(argparse.ArgumentParser):
    """argparse that reports a bad flag on one line and exits 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def cli(main):
    """Wrap an entry point's main(argv) so a UserError exits 2 with a one-line message."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None):
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
