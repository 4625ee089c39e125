"""Which output folders are pixelda's: a run or an export folder carries a marker file that
pixelda wrote (`.pixelda-run.json`, `.pixelda-export.json`), and --overwrite deletes or replaces
only a folder it can prove is its own. Also the checks every --out path passes first."""

import json
from pathlib import Path

from . import __version__
from .config import METHODS, TrainConfig
from .errors import UserError
from .fileio import atomic_write_json

SCHEMA = "pixelda-folder"
VERSION = 1
MARKERS = {"run": ".pixelda-run.json", "export": ".pixelda-export.json"}
NOUNS = {"run": "run directory", "export": "export"}
# What a run folder or an export written before markers existed (pixelda <= 0.x) holds.
LEGACY_RUN_KEYS = {"method", "source", "target", "steps", "out", "seed"}
LEGACY_EXPORT_KEYS = {"checkpoint_sha256", "run_config", "counts_per_class", "format", "classes"}


def write_marker(folder: Path, kind: str) -> None:
    """Mark `folder` as a pixelda `kind` ("run" or "export") folder."""
    atomic_write_json(
        folder / MARKERS[kind],
        {"schema": SCHEMA, "kind": kind, "version": VERSION, "pixelda_version": __version__},
    )


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _marked(folder: Path, kind: str) -> bool:
    marker = _json(folder / MARKERS[kind])
    return (
        isinstance(marker, dict)
        and marker.get("schema") == SCHEMA
        and marker.get("kind") == kind
        and isinstance(marker.get("version"), int)
        and 1 <= marker["version"] <= VERSION
    )


def _legacy_run(folder: Path) -> bool:
    """A run folder from before markers: a config.json that is a TrainConfig dict (its keys are
    TrainConfig fields, the main ones present, a known method) beside ckpt.pt or metrics.jsonl."""
    config = _json(folder / "config.json")
    if not isinstance(config, dict) or not LEGACY_RUN_KEYS <= set(config):
        return False
    if not set(config) <= set(TrainConfig.__dataclass_fields__) or config["method"] not in METHODS:
        return False
    return (folder / "ckpt.pt").is_file() or (folder / "metrics.jsonl").is_file()


def _legacy_export(folder: Path) -> bool:
    """An export from before markers: its manifest.json holds what export.manifest() writes."""
    manifest = _json(folder / "manifest.json")
    return (
        isinstance(manifest, dict)
        and LEGACY_EXPORT_KEYS <= set(manifest)
        and manifest["format"] in ("imagefolder", "npz")
    )


def owned(folder: Path, kind: str) -> bool:
    """True if `folder` is a pixelda `kind` folder: marked, or written before markers were."""
    legacy = _legacy_run if kind == "run" else _legacy_export
    return folder.is_dir() and (_marked(folder, kind) or legacy(folder))


def check_replaceable(folder: Path, kind: str, *, overwrite: bool, hint: str = "") -> None:
    """A non-empty --out: a UserError without --overwrite (`hint` names the other way out),
    and with it unless the folder is ours to delete (refuse_unless_owned)."""
    if not (folder.is_dir() and any(folder.iterdir())):
        return
    if not overwrite:
        raise UserError(f"--out: {folder} is not empty; pass {hint}--overwrite to replace it")
    refuse_unless_owned(folder, kind)


def refuse_unless_owned(folder: Path, kind: str) -> None:
    """--overwrite on a non-empty folder: a UserError unless it is ours to delete."""
    if not owned(folder, kind):
        legacy = "manifest.json" if kind == "export" else "config.json and ckpt.pt"
        raise UserError(
            f"--overwrite: refusing to delete {folder}: it is not a pixelda {NOUNS[kind]} (no "
            f"{MARKERS[kind]}, nor the {legacy} of an older pixelda {kind}); nothing was deleted"
        )


def check_out_path(path: str | Path, flag: str = "--out") -> Path:
    """`path` made absolute, or a UserError: a symbolic link (never followed: deleting through
    it would delete its target), a filesystem root, a file, or a path below a file."""
    given = Path(path).expanduser()
    if given.is_symlink():
        raise UserError(
            f"{flag}: {given} is a symbolic link; give the folder itself (pixelda does not "
            f"write through links)"
        )
    out = given.resolve()
    if out == Path(out.anchor):
        raise UserError(f"{flag}: {out} is a filesystem root; give a folder below it")
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag}: {out} exists and is not a folder")
    ancestor = next(p for p in out.parents if p.exists())
    if not ancestor.is_dir():
        raise UserError(f"{flag}: {out} is below {ancestor}, which is a file, not a folder")
    return out
