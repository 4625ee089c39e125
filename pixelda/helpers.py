"""Small pieces the methods share: one optimizer update, frozen and eval-mode blocks, the
optimizers and task network a config asks for, and the U(-1, 1) noise PixelDA and the cGAN draw."""

import contextlib
import copy

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from . import speed
from .backbones import task_network


def optimize(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float = 0.0) -> None:
    """zero_grad, backward, clip the global gradient norm of the optimizer's parameters, step."""
    opt.zero_grad(set_to_none=True)
    # Under --amp bf16 only the forward passes are autocast (torch's advice); backward ops
    # take the dtypes of their forward ops anyway.
    with torch.autocast(loss.device.type, enabled=False):
        loss.backward()
        if clip > 0:
            params = [p for group in opt.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Use modules (in their current mode) without training them: no parameter gradients are
    computed, and buffers such as BN running statistics are left as they were.

    The forward pass inside updates throwaway copies of the buffers, so autograd's saved
    tensors stay valid for a backward pass after the block. The official code updates D's BN
    statistics in the D-step only."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    originals = [
        (sub, name, buf)
        for m in modules
        for sub in m.modules()
        for name, buf in sub._buffers.items()
        if buf is not None
    ]
    for p in params:
        p.requires_grad_(False)
    for sub, name, buf in originals:
        sub._buffers[name] = buf.clone()
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
        for sub, name, buf in originals:
            sub._buffers[name] = buf


@contextlib.contextmanager
def eval_mode(*modules: nn.Module):
    """modules.eval() inside, their previous train/eval mode restored after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of `module` with each Conv2d -> BatchNorm2d pair inside an
    nn.Sequential folded into one conv (same function up to float rounding, ~1e-8)."""
    module = copy.deepcopy(module).eval()
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return module


def adam(params, cfg) -> torch.optim.Adam:
    """Adam with cfg's learning rate and beta1 (the loop sets the lr before every step)."""
    return speed.adam(params, cfg, lr=cfg.lr, betas=(cfg.beta1, 0.999))


def classifier_optimizer(params, cfg) -> torch.optim.Optimizer:
    """--optimizer: Adam as for every method, or SGD with --momentum (Ganin & Lempitsky 2015),
    for the baselines. Its lr is set by the loop before every step."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    return adam(params, cfg)


def predictor(models: nn.ModuleDict) -> nn.Module:
    """The network whose predictions are a run's answer: PixelDA's teacher (the moving average
    of T kept by --target-weight) where there is one, else the "classifier"."""
    if "teacher" in models:
        return models["teacher"].module
    return models["classifier"]


def task_network_for(cfg, info) -> nn.Module:
    """The task network of --backbone for the run's data (--pretrained: ImageNet weights)."""
    return task_network(
        cfg.backbone,
        in_channels=info.channels,
        image_size=info.image_size,
        num_outputs=info.num_outputs,
        pretrained=cfg.pretrained,
    )


def zoom_in(
    x: torch.Tensor,
    factors: torch.Tensor,
    shifts: torch.Tensor | None = None,
    *,
    padding: str = "zeros",
) -> torch.Tensor:
    """Each image of x (B, C, H, W) zoomed about its centre by its factor (B,) and moved by its
    shift (B, 2), in units of half the image (x, y), bilinear. With factors >= 1 and no shift
    every output pixel samples inside the image; otherwise `padding` (grid_sample's
    padding_mode: "zeros" or "border") fills what comes from outside."""
    theta = torch.zeros(x.size(0), 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = (1 / factors.float()).to(x.device)
    if shifts is not None:
        theta[:, :, 2] = shifts.to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, padding_mode=padding, align_corners=False)
    return out.to(x.dtype)


def uniform_noise(shape, *, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """z ~ U(-1, 1)^shape (Bousmalis et al. 2017 and Mirza & Osindero 2014 draw uniform noise);
    drawn on the CPU when a seeded `generator` is given, then moved to `device`."""
    if generator is not None:
        return (torch.rand(shape, generator=generator) * 2 - 1).to(device or "cpu")
    return torch.rand(shape, device=device) * 2 - 1
