"""PixelDA (Bousmalis et al. 2017): G adapts source images to the target style, D tells them
from real target images, T learns the labels from source and adapted images."""

import itertools

import torch
from torch import nn

from .. import losses
from ..helpers import (
    adam,
    eval_mode,
    fold_batchnorm,
    frozen,
    optimize,
    task_network_for,
    uniform_noise,
)
from ..metrics import held_out
from ..models import Discriminator, Generator

CLASSIFIER = "classifier"


def build(cfg, info) -> nn.ModuleDict:
    size, c = info.image_size, info.channels
    return nn.ModuleDict(
        {
            "generator": Generator(
                in_channels=c,
                out_channels=c,
                image_size=size,
                latent_dim=cfg.latent_dim,
                width=cfg.g_width,
                blocks=cfg.g_blocks,
            ),
            "discriminator": Discriminator(
                in_channels=c,
                image_size=size,
                width=cfg.d_width,
                dropout=cfg.d_dropout,
                noise_std=cfg.d_noise,
            ),
            "classifier": task_network_for(cfg, info),
        }
    )


def optimizers(m: nn.ModuleDict, cfg) -> dict:
    # The official D-step trains the discriminator and the task classifier together:
    # one optimizer, one gradient clip over both.
    d_params = itertools.chain(m["discriminator"].parameters(), m["classifier"].parameters())
    return {"d": adam(d_params, cfg), "g": adam(m["generator"].parameters(), cfg)}


def train_step(m: nn.ModuleDict, opts: dict, batch, cfg, progress: float) -> dict:
    """One iteration: a D-step then a G-step on the same adapted images."""
    z = uniform_noise((batch.x_src.size(0), cfg.latent_dim), device=batch.x_src.device)
    x_fake = m["generator"](batch.x_src, z)  # (B, C, H, W) in [-1, 1]
    # Detached for the D-step, which must not move G; the graph is kept for the G-step.
    return {**d_step(m, opts, batch, x_fake.detach(), cfg), **g_step(m, opts, batch, x_fake, cfg)}


def d_step(m: nn.ModuleDict, opts: dict, batch, x_fake: torch.Tensor, cfg) -> dict:
    """D learns real target vs adapted source; T learns labels from source and adapted images
    (the official D-step trains both)."""
    d_loss = cfg.domain_weight * losses.d_loss(
        m["discriminator"](batch.x_tgt), m["discriminator"](x_fake)
    )
    src_out, fake_out = m["classifier"](torch.cat([batch.x_src, x_fake])).chunk(2)
    task_loss = losses.task_loss(src_out, batch.y_src) + losses.task_loss(fake_out, batch.y_src)
    optimize(opts["d"], d_loss + task_loss, cfg.clip_grad_norm)
    return {"d_loss": d_loss.detach(), "task_loss": task_loss.detach()}


def g_step(m: nn.ModuleDict, opts: dict, batch, x_fake: torch.Tensor, cfg) -> dict:
    """G learns to fool the updated D, keep the label recoverable by T, and stay close to the
    source (masked PMSE). D and T are frozen: no gradients, BN statistics left alone."""
    with frozen(m["discriminator"], m["classifier"]):
        style_loss = losses.g_loss(m["discriminator"](x_fake))
        task_g_loss = losses.task_loss(m["classifier"](x_fake), batch.y_src)
    g_loss = cfg.style_weight * style_loss + cfg.task_in_g_weight * task_g_loss
    content_loss = torch.zeros((), device=x_fake.device)
    if cfg.content_weight > 0:
        content_loss = losses.masked_pmse(x_fake, batch.x_src, batch.mask_src)
        g_loss = g_loss + cfg.content_weight * content_loss
    optimize(opts["g"], g_loss, cfg.clip_grad_norm)
    return {
        "g_loss": g_loss.detach(),
        "style_loss": style_loss.detach(),
        "content_loss": content_loss.detach(),
    }


def evaluate(m: nn.ModuleDict, data) -> dict:
    """T on the held-out splits (metrics.held_out)."""
    return held_out(m[CLASSIFIER], data)


@torch.no_grad()
def adapt(generator: nn.Module, x_src: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """G in eval mode (BN running statistics): the adapted images a user gets."""
    with eval_mode(generator):
        return generator(x_src, z)


def exporter(m: nn.ModuleDict):
    """(x_src, y_src, z) -> adapted images, for writing a dataset: G in eval mode with its
    BatchNorm folded into the convolutions and channels_last, ~1.3x and ~1.1-1.4x faster on 2
    CPU cores (benchmarks/export_throughput.py). Outputs agree with adapt() to ~1e-8, so a
    uint8 pixel can differ by one at a rounding boundary."""
    generator = fold_batchnorm(m["generator"]).to(memory_format=torch.channels_last)

    def run(x_src: torch.Tensor, y_src: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return adapt(generator, x_src.contiguous(memory_format=torch.channels_last), z)

    return run


def grid(m: nn.ModuleDict, fixed) -> list[torch.Tensor]:
    """Columns: source | adapted with three different z | real target."""
    adapted = [adapt(m["generator"], fixed.x_src, z) for z in fixed.z]
    return [fixed.x_src, *adapted, fixed.x_tgt]
