"""Where a run computes: the torch device a --device name asks for, and a one-line description
of the hardware for summaries and benchmark reports."""

import platform
from pathlib import Path

import torch

from .errors import UserError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise UserError("--device mps: no MPS device is available")
    return torch.device(name)


def cpu_name() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device | str = "cpu") -> str:
    """The CPU and torch's thread count, e.g. "AMD EPYC 9B14, 2 torch threads", after the GPU's
    name where a run computes on one ("NVIDIA H200; Intel Xeon, 3 torch threads")."""
    device = torch.device(device)
    host = f"{cpu_name()}, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}; {host}"
    if device.type == "mps":
        return f"Apple MPS; {host}"
    return host
