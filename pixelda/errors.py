"""User-facing errors: one line on stderr and exit code 2, never a traceback.

`cli` is each entry point's one error boundary: what a user can cause (a bad flag or file, a
path the system refuses, a size that does not fit in memory) ends in one line and exit 2, and
Ctrl-C in one line and exit 130 (128 + SIGINT, as shells report it)."""

import argparse
import functools
import os
import signal
import sys
import threading


class UserError(Exception):
    """Bad input from the user (a flag, a path, a file); the message names it."""


class CliParser(argparse.ArgumentParser):
    """argparse that reports a bad flag on one line and exits 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# How torch's allocators word a failed allocation (CPU, CUDA, MPS).
ALLOCATION_FAILURES = ("can't allocate memory", "out of memory", "not enough memory")


def user_facing(e: BaseException) -> str | None:
    """The one-line message for an exception the user caused, or None for a bug."""
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, MemoryError) or (
        isinstance(e, RuntimeError) and any(s in str(e) for s in ALLOCATION_FAILURES)
    ):
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return (
            f"out of memory ({first[:160]}); try a smaller --batch-size, --image-size or "
            f"model widths"
        )
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}"
    return None


def _interrupted_while_starting(signum, frame):
    # Before main() runs nothing is written, so exit at once: a SystemExit raised here can land
    # inside library code that swallows it (an import's `except BaseException`, a finalizer),
    # and the run would then go on.
    print("interrupted (Ctrl-C) while starting; nothing was written", file=sys.stderr, flush=True)
    os._exit(130)


def exit_130_on_ctrl_c() -> None:
    """Called first thing by an entry point run as a script: Ctrl-C while its imports load
    (torch takes seconds) ends in one line and exit 130, not a traceback from inside torch.
    cli hands Ctrl-C back to Python (KeyboardInterrupt) once main() runs."""
    signal.signal(signal.SIGINT, _interrupted_while_starting)


def start_command(module_name: str, command: str, in_python: str) -> None:
    """First thing in pixelda/train.py, export.py, evaluate.py and select.py, the `python -m`
    commands: imported instead of run (which would hide the API function of the same name on
    the package), an ImportError naming what to call; run, exit_130_on_ctrl_c."""
    if module_name != "__main__":
        raise ImportError(
            f"{command} is the command `python -m {command}`; in Python use {in_python}"
        )
    exit_130_on_ctrl_c()


def cli(main):
    """Wrap an entry point's main(argv): a UserError (or a failure of the system the user can
    fix: a file the system refuses, memory) exits 2 with one line; Ctrl-C exits 130."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None):
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("interrupted (Ctrl-C): stopped; nothing half-written was kept", file=sys.stderr)
            raise SystemExit(130) from None
        except (UserError, OSError, MemoryError, RuntimeError) as e:
            message = user_facing(e)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
