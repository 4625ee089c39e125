"""Speed settings (issue #6): channels_last, fused Adam, torch.compile, bf16 autocast.

Each is a TrainConfig flag, on by default only where it measured faster (README, Performance):
channels_last everywhere, and bf16 autocast on hardware with native bfloat16, so --amp auto
(the default) turns it on there. None changes the checkpoint format, so each may change on
--resume.
"""

import contextlib
import importlib.util
import os
import shutil
import sys

import torch
from torch import nn

from .errors import UserError

AMP_DEVICES = ("cpu", "cuda")


def memory_format(cfg) -> torch.memory_format:
    """The memory format of the models' weights and of the training batches."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def prepare_models(models: nn.ModuleDict, cfg, device) -> nn.ModuleDict:
    """The models on `device`, in the run's memory format and, with --compile, compiled in place.

    Call before the optimizers are built and a checkpoint is loaded into them. module.compile()
    keeps the modules and their state_dict keys, so checkpoints are those of eager models."""
    device = torch.device(device)
    check_amp(cfg, device)
    models = models.to(device, memory_format=memory_format(cfg))
    if cfg.compile:
        require_compiler(device)
        for module in models.values():
            module.compile()
    return models


def native_bf16(device: torch.device) -> bool:
    """Does the device compute bfloat16 natively (CPUs with AVX-512 BF16 or AMX, CUDA GPUs
    with bf16 support)? Elsewhere bf16 is emulated: measured 2-12x slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch >= 2.3
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def amp_mode(cfg, device) -> str:
    """What --amp means on `device`: "bf16" or "none" (auto: bf16 where it is native)."""
    if cfg.amp == "auto":
        return "bf16" if native_bf16(torch.device(device)) else "none"
    return cfg.amp


def check_amp(cfg, device: torch.device) -> None:
    if amp_mode(cfg, device) == "none":
        return
    if device.type not in AMP_DEVICES:
        raise UserError(f"--amp {cfg.amp}: supported on {' and '.join(AMP_DEVICES)}, not {device}")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"--amp bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support")


def autocast(cfg, device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast around a training step with --amp bf16, else nothing.

    Matmuls and convolutions run in bf16; pixelda.losses computes in float32 and
    helpers.optimize runs backward and the optimizer step with autocast off. No weight
    cache: it would give a G-step the bf16 copies of D's weights from before the D-step's
    update (re-casting them measured no slower)."""
    if amp_mode(cfg, device) == "none":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, cache_enabled=False)


def adam(params, cfg, **kwargs) -> torch.optim.Adam:
    """torch.optim.Adam, with its fused kernel when cfg.fused_adam (a UserError where the
    parameters' device has none)."""
    if not cfg.fused_adam:
        return torch.optim.Adam(params, **kwargs)
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"--fused-adam: not available here ({reason})") from None


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """opt.load_state_dict(state), keeping opt's own fused setting.

    A checkpoint's param_groups hold its run's `fused`, which --fused-adam may change on
    --resume; the fused kernel wants its step counts on the parameters' device."""
    own = [{k: group[k] for k in ("fused", "foreach") if k in group} for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, keep in zip(opt.param_groups, own):
        group.update(keep)
        if not group.get("fused"):
            continue
        for p in group["params"]:
            step = opt.state.get(p, {}).get("step")
            if torch.is_tensor(step):
                opt.state[p]["step"] = step.to(device=p.device, dtype=torch.float32)


def cxx_compiler() -> str:
    """The C++ compiler torch.compile's CPU backend (inductor) would call."""
    default = "cl" if sys.platform == "win32" else "clang++" if sys.platform == "darwin" else "g++"
    return os.environ.get("CXX") or default


def require_compiler(device: torch.device) -> None:
    """Fail before training, in one line, where torch.compile would fail at the first step."""
    if device.type == "cpu" and shutil.which(cxx_compiler()) is None:
        raise UserError(
            f"--compile: torch.compile on the CPU needs a C++ compiler; {cxx_compiler()!r} was "
            f"not found (install g++ or set CXX, or drop --compile)"
        )
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise UserError("--compile: torch.compile on CUDA needs the triton package")
