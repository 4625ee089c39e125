"""pixelda: pixel-level unsupervised domain adaptation (Bousmalis et al. 2017) in PyTorch.

The Python API (pixelda/api.py): pixelda.train(**overrides), pixelda.load(checkpoint),
pixelda.export(checkpoint, out, **options). Imported lazily, so `import pixelda` stays cheap.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["Adapter", "TrainResult", "UserError", "export", "load", "train"]

# name -> the module it lives in; pixelda.train and pixelda.export are callable modules.
_LAZY = {
    "train": None,
    "export": None,
    "load": "api",
    "Adapter": "api",
    "TrainResult": "api",
    "UserError": "errors",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _LAZY[name] is None:
        return importlib.import_module(f".{name}", __name__)
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
