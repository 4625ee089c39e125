"""pixelda: pixel-level unsupervised domain adaptation (Bousmalis et al. 2017) in PyTorch.

The Python API (pixelda/api.py): pixelda.train(**options), pixelda.load(checkpoint),
pixelda.export(checkpoint, out, **options), pixelda.evaluate(checkpoint, **options) and
pixelda.select(runs, by=...). Imported lazily, so `import pixelda` stays cheap. The modules
pixelda/train.py, export.py, evaluate.py and select.py are the `python -m` commands only.

Where to start reading: pixelda/adversarial.py (the loop every method shares) and
pixelda/methods/pixelda.py (PixelDA's D-step and G-step); the layers are listed in
docs/architecture.md.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["Adapter", "TrainResult", "UserError", "evaluate", "export", "load", "select", "train"]

# name -> the module it lives in.
_LAZY = {
    "train": "api",
    "export": "api",
    "evaluate": "api",
    "select": "api",
    "load": "api",
    "Adapter": "api",
    "TrainResult": "api",
    "UserError": "errors",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
