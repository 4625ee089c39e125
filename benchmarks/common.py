"""What the benchmark scripts share: their own flags apart from the training flags after `--`,
and one rule for training a run or reusing it."""

import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

import pixelda  # noqa: E402
from pixelda.training import config_from_overrides  # noqa: E402

# Config fields that may differ between a stored run and the same run asked for again.
IGNORED = {"overwrite", "resume", "progress"}


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the script's own flags, the training flags after `--`)."""
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1 :]


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_one(overrides: dict, out: Path) -> dict:
    """Train, or reuse a finished run of the same config in `out`, or resume its checkpoint.

    -> the run's summary; a failed run raises UserError."""
    wanted = dataclasses.asdict(config_from_overrides(overrides)[0])
    stored = read_json(out / "config.json") or {}
    same = {k: v for k, v in stored.items() if k not in IGNORED} == {
        k: v for k, v in wanted.items() if k not in IGNORED
    }
    summary = read_json(out / "summary.json")
    if same and summary and summary.get("finished"):
        print(f"benchmark: reusing the finished run in {out}", file=sys.stderr)
        return summary
    if same and (out / "ckpt.pt").is_file():
        return pixelda.train(**{**overrides, "resume": True}).summary
    replace = out.is_dir() and any(out.iterdir())
    return pixelda.train(**{**overrides, "overwrite": replace}).summary
