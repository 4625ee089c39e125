"""Command-line flags generated from a config dataclass: one flag per field (`task_weight` ->
`--task-weight`), help and choices from the field's metadata, defaults shown per preset."""

import argparse
import dataclasses

from .config import METHOD_DEFAULTS, PRESETS, TrainConfig, resolve
from .errors import CliParser
from .recipes import METHOD_PRESETS


def _default_text(name: str, default, presets: dict[str, dict]) -> str:
    if not any(name in overrides for overrides in presets.values()):
        text = repr(default)
    else:
        text = ", ".join(f"{p} {o.get(name, default)!r}" for p, o in presets.items())
    for method, overrides in METHOD_DEFAULTS.items():
        if name in overrides and presets:
            text += f"; --method {method}: {overrides[name]!r}"
    for (method, preset), overrides in METHOD_PRESETS.items():
        if name in overrides and presets:
            text += f"; --method {method} --preset {preset}: {overrides[name]!r}"
    return text


def build_parser(
    cls, *, prog: str, description: str, presets: dict[str, dict] | None = None
) -> argparse.ArgumentParser:
    """One flag per dataclass field (`task_weight` -> `--task-weight`), defaults shown in help.

    Flags default to SUPPRESS so only what the user typed overrides the preset."""
    parser = CliParser(prog=prog, description=description)
    defaults = cls()
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        kwargs = {"default": argparse.SUPPRESS, "dest": f.name}
        help_text = f.metadata.get("help", "")
        if "(default:" not in help_text:  # a help text that names its default says it better
            help_text += f" (default: {_default_text(f.name, default, presets or {})})"
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = type(default)
            kwargs["metavar"] = f.name.upper()
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(flag, help=help_text, **kwargs)
    return parser


def train_parser() -> argparse.ArgumentParser:
    """The flags of `python -m pixelda.train`, one per TrainConfig field."""
    return build_parser(
        TrainConfig,
        prog="python -m pixelda.train",
        description="Train PixelDA or a baseline.",
        presets=PRESETS,
    )


def parse_train_args(argv: list[str] | None) -> TrainConfig:
    """argv -> the resolved config (no resume handling: see train.config_from_args)."""
    return resolve(vars(train_parser().parse_args(argv)))
