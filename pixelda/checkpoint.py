"""One checkpoint dict per run: models, optimizers, step, config, RNG and data-stream state.

Written atomically; read with torch.load(weights_only=True) only, so a checkpoint can never
run code when it is loaded.
"""

import pickle
import zipfile
from pathlib import Path

import torch

from . import __version__
from .errors import UserError
from .fileio import atomic_torch_save

FORMAT = "pixelda-checkpoint"
FORMAT_VERSION = 1


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    path: str | Path,
    *,
    config: dict,
    data_info: dict,
    step: int,
    wall_s: float,
    train_s: float,
    models,
    optimizers: dict,
    batches: dict,
    skipped_steps: int = 0,
    rng_ranks: list | None = None,
    best: dict | None = None,
    watch: dict | None = None,
) -> None:
    """Write the whole training state to `path` atomically (temporary file, then rename).

    A failed write (disk full, permission denied) is a UserError; the old file stays whole."""
    atomic_torch_save(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pixelda_version": __version__,
            "config": config,
            "data_info": data_info,
            "step": step,
            "wall_s": wall_s,
            "train_s": train_s,
            "models": {name: m.state_dict() for name, m in models.items()},
            "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
            "batches": batches,
            "skipped_steps": skipped_steps,
            "best": best or {},  # {"step", "metric", "value"}: the run's best.pt so far
            "watch": watch or {},  # what the run's warnings remember (adversarial.Watch)
            "rng": rng_state(),
            # Under torchrun: every rank's random state, in rank order (rank 0's is "rng").
            **({"rng_ranks": rng_ranks} if rng_ranks else {}),
        },
        path,
    )


def _reason(e: Exception) -> str:
    """A short cause for torch.load's long error messages."""
    text = str(e)
    for line in text.splitlines():
        if "GLOBAL" in line:  # weights_only refused a class or function: code, not data
            return f"refused to load code or arbitrary objects: {line.strip()[:120]}"
    if isinstance(e, pickle.UnpicklingError):
        return "not a torch checkpoint file"
    if "zip archive" in text or isinstance(e, (EOFError, zipfile.BadZipFile)):
        return "truncated or corrupted file"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return first[:200]


def load_models(models, states: dict) -> None:
    """Load {name: state_dict} into a ModuleDict; a mismatch is a UserError."""
    try:
        for name, module in models.items():
            module.load_state_dict(states[name])
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        raise UserError(
            f"checkpoint: model weights do not fit its config ({first[:200]})"
        ) from None


def load(path: str | Path, *, map_location="cpu") -> dict:
    """Read a pixelda checkpoint; anything else gives a one-line UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--checkpoint: {path} is a folder; give the run's ckpt.pt in it")
    if not path.is_file():
        raise UserError(f"--checkpoint: {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        AttributeError,
        TypeError,
        KeyError,
        IndexError,
    ) as e:
        raise UserError(f"{path}: not a readable pixelda checkpoint ({_reason(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not a pixelda checkpoint")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"{path}: written by a newer pixelda ({ckpt.get('pixelda_version')})")
    return ckpt
