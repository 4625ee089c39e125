"""Conditional GAN (Mirza & Osindero 2014): G(z, y) draws a digit of class y, D(x, y) tells real
(image, label) pairs from generated ones. Trained by the same loop as PixelDA; scored by a
judge classifier trained on real images (pixelda/judge.py)."""

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from .. import judge, losses
from ..data import DataOptions
from ..helpers import adam, eval_mode, frozen, optimize, uniform_noise
from ..metrics import score
from ..models import ConditionalDiscriminator, ConditionalGenerator

# Nothing here classifies: the product is the generator, see generate().
CLASSIFIER = None
SAMPLES_PER_CLASS = 1000  # 10,000 generated digits per evaluation for 10 classes
EVAL_SEED = 1234  # the same evaluation noise every time, drawn without touching the run's RNG


def build(cfg, info) -> nn.ModuleDict:
    if info.regression or not info.num_outputs:
        raise ValueError("cgan: needs class labels")
    k, c, size = info.num_outputs, info.channels, info.image_size
    generator = ConditionalGenerator(
        num_classes=k,
        out_channels=c,
        image_size=size,
        latent_dim=cfg.latent_dim,
        embed_dim=cfg.embed_dim,
        width=cfg.g_width,
    )
    models = nn.ModuleDict(
        {
            "generator": generator,
            "discriminator": ConditionalDiscriminator(
                num_classes=k, in_channels=c, image_size=size, width=cfg.d_width
            ),
        }
    )
    if cfg.ema_decay > 0:
        # The samples come from a running average of G's weights: far less noisy than the
        # last step's G (Yazici et al. 2019). It is saved with the checkpoint, never trained.
        models["generator_ema"] = weight_average(generator, cfg.ema_decay)
    return models


def weight_average(generator: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of G's weights (BN statistics copied from G). Its first
    update copies G; after n updates it moves by 1 - min(decay, (1 + n) / (10 + n)), so early
    on it soon forgets the random initial weights (tf.train.ExponentialMovingAverage)."""

    def average(p_avg: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        n = int(n)
        return p_avg.lerp(p, 1.0 - min(decay, (1 + n) / (10 + n)))

    return AveragedModel(generator, avg_fn=average).requires_grad_(False)


def sampler(m: nn.ModuleDict) -> nn.Module:
    """The generator that draws samples: the weight average when there is one."""
    return m["generator_ema"].module if "generator_ema" in m else m["generator"]


def optimizers(m: nn.ModuleDict, cfg) -> dict:
    return {
        "d": adam(m["discriminator"].parameters(), cfg),
        "g": adam(m["generator"].parameters(), cfg),
    }


def train_step(m: nn.ModuleDict, opts: dict, batch, cfg, progress: float) -> dict:
    x, y = batch.x_src, batch.y_src  # real (B, C, H, W) in [-1, 1] and their int64 labels (B,)
    # G draws a digit for each real image's label, so every batch is class-balanced like the data.
    x_fake = m["generator"](uniform_noise((x.size(0), cfg.latent_dim), device=x.device), y)

    # (1) D-step: real (x, y) vs generated (G(z, y), y). x_fake is detached: G must not move.
    d_loss = losses.d_loss(m["discriminator"](x, y), m["discriminator"](x_fake.detach(), y))
    optimize(opts["d"], d_loss, cfg.clip_grad_norm)

    # (2) G-step: fool the updated D on the same labels; D is frozen (no gradients).
    with frozen(m["discriminator"]):
        g_loss = losses.g_loss(m["discriminator"](x_fake, y))
    optimize(opts["g"], g_loss, cfg.clip_grad_norm)
    if cfg.ema_decay > 0:
        m["generator_ema"].update_parameters(m["generator"])
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


@torch.no_grad()
def generate(m: nn.ModuleDict, labels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """G (its weight average if the run keeps one) in eval mode, BN with running statistics:
    labels int64 (N,), z (N, latent_dim) in [-1, 1] -> images (N, C, S, S) in [-1, 1], image i
    of class labels[i]."""
    g = sampler(m)
    with eval_mode(g):
        return g(z.to(g.fc.weight.device), labels.to(g.fc.weight.device))


def exporter(m: nn.ModuleDict):
    """(x_src, y_src, z) -> one generated digit per source label: the cGAN ignores the source
    image, so an export is a labeled synthetic dataset with the source's class balance."""
    return lambda x_src, y_src, z: generate(m, y_src, z)


def evaluate(m: nn.ModuleDict, data) -> dict:
    """The judge scores SAMPLES_PER_CLASS generated digits of each class, and real test digits.

    conditional_acc: fraction of generated digits the judge gives the label they were drawn
    for; pred_hist: share of the generated digits the judge puts in each class (a class near
    0 means mode collapse); judge_test_acc: the judge on the real test split."""
    cache = (data.options or DataOptions()).cache  # cache_dir, else PIXELDA_CACHE_DIR or ~/.cache
    classifier = judge.load_or_train(data.source_train, cache)
    g = m["generator"]
    k = g.num_classes
    labels = torch.arange(k).repeat_interleave(SAMPLES_PER_CLASS)
    z = uniform_noise(
        (len(labels), g.latent_dim), generator=torch.Generator().manual_seed(EVAL_SEED)
    )
    preds = torch.cat(
        [
            _classify(classifier, generate(m, y_part, z_part).cpu())
            for y_part, z_part in zip(labels.split(1000), z.split(1000))
        ]
    )
    hist = torch.bincount(preds, minlength=k).float() / len(preds)
    out = {
        "conditional_acc": (preds == labels).float().mean().item(),
        "pred_hist": [round(v, 4) for v in hist.tolist()],
        "pred_hist_min": hist.min().item(),
    }
    if data.source_test is not None and data.source_test.labels is not None:
        out["judge_test_acc"] = score(classifier, data.source_test)["acc"]
    return out


@torch.no_grad()
def _classify(classifier: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Judge's predicted class for float images (N, C, S, S) in [-1, 1] -> int64 (N,)."""
    with eval_mode(classifier):
        return classifier(x).argmax(1)


def grid(m: nn.ModuleDict, fixed) -> list[torch.Tensor]:
    """The classic figure: one row per class, one column per fixed noise vector (the run's first
    fixed z, seeded by --seed), so a column shows one "style" across all digits."""
    g = m["generator"]
    z_cols = fixed.z[0]  # (columns, latent_dim), U(-1, 1), the same at every grid of a run
    labels = torch.arange(g.num_classes, device=z_cols.device)
    return [generate(m, labels, z.expand(g.num_classes, -1)) for z in z_cols]
