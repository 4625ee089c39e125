"""PixelDA (Bousmalis et al. 2017): G adapts source images to the target style, D tells them
from real target images, T learns the labels from source and adapted images."""

import itertools

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .. import distributed, losses
from ..helpers import (
    adam,
    eval_mode,
    fold_batchnorm,
    frozen,
    optimize,
    predictor,
    task_network_for,
    uniform_noise,
    zoom_in,
)
from ..metrics import held_out
from ..models import Discriminator, Generator

CLASSIFIER = "classifier"
# --consistency-judge source or recoloured: a task network trained on source images only
SOURCE_JUDGE = "source_classifier"
# --target-weight: the moving average of T that pseudo-labels target images
TEACHER = "teacher"
# --target-class-thresholds: the running shares' decay per step, and the lowest threshold
SHARES_DECAY = 0.99
MIN_CLASS_THRESHOLD = 0.5


def uses_source_judge(cfg) -> bool:
    return cfg.consistency_weight > 0 and cfg.consistency_judge in ("source", "recoloured")


def build(cfg, info) -> nn.ModuleDict:
    """G, D and T; with --consistency-judge source also the source-only judge, and with
    --target-weight (for classes) the teacher, so that checkpoints carry them."""
    size, c = info.image_size, info.channels
    m = nn.ModuleDict(
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
    if uses_source_judge(cfg):
        m[SOURCE_JUDGE] = task_network_for(cfg, info)
    if cfg.target_weight > 0 and not info.regression:  # pseudo-labels are classes
        m[TEACHER] = AveragedModel(
            m["classifier"], multi_avg_fn=get_ema_multi_avg_fn(cfg.teacher_decay)
        ).requires_grad_(False)
        if cfg.target_class_thresholds:  # class_thresholds' running shares, checkpointed
            m[TEACHER].register_buffer("confident_shares", torch.zeros(info.num_outputs))
        if cfg.target_balance > 0 and cfg.target_balance_decay > 0:
            # class_balance's running shares, checkpointed; they start at the even share.
            k = info.num_outputs
            m[TEACHER].register_buffer("predicted_shares", torch.full((k,), 1 / k))
    return m


def optimizers(m: nn.ModuleDict, cfg) -> dict:
    # The official D-step trains the discriminator and the task classifier together:
    # one optimizer, one gradient clip over both.
    d_params = itertools.chain(m["discriminator"].parameters(), m["classifier"].parameters())
    opts = {"d": adam(d_params, cfg), "g": adam(m["generator"].parameters(), cfg)}
    if SOURCE_JUDGE in m:  # its own optimizer: the paper's D-step update stays as it was
        opts["judge"] = adam(m[SOURCE_JUDGE].parameters(), cfg)
    return opts


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
    task_loss, target_loss = task_losses(m, batch, x_fake, cfg)
    optimize(opts["d"], d_loss + task_loss + cfg.target_weight * target_loss, cfg.clip_grad_norm)
    out = {"d_loss": d_loss.detach(), "task_loss": task_loss.detach()}
    if TEACHER in m:
        m[TEACHER].update_parameters(m["classifier"])
        out["target_loss"] = target_loss.detach()
    if SOURCE_JUDGE in m:
        x_judge = batch.x_src
        if cfg.consistency_judge == "recoloured":
            x_judge = random_colours(x_judge)
        judge_loss = losses.task_loss(m[SOURCE_JUDGE](x_judge), batch.y_src)
        optimize(opts["judge"], judge_loss, cfg.clip_grad_norm)
        out["judge_loss"] = judge_loss.detach()
    return out


def task_losses(m: nn.ModuleDict, batch, x_fake: torch.Tensor, cfg):
    """T's losses in the D-step: (cross-entropy on the source and on the adapted images, both
    with the source labels; self-training on the target images, 0 without a teacher), from one
    forward pass over all of them."""
    if cfg.adapted_zoom > 1:
        x_fake = random_zoom(x_fake, cfg.adapted_zoom, share=cfg.adapted_zoom_share)
    images = [batch.x_src, x_fake]
    if TEACHER in m:  # the student sees the target images shifted and scaled (and recoloured)
        x_student = random_shift_scale(batch.x_tgt)
        images.append(random_channels(x_student) if cfg.target_recolour else x_student)
    outputs = m[CLASSIFIER](torch.cat(images)).chunk(len(images))
    task_loss = losses.task_loss(outputs[0], batch.y_src) + losses.task_loss(
        outputs[1], batch.y_src
    )
    if TEACHER not in m:
        return task_loss, torch.zeros((), device=x_fake.device)
    return task_loss, self_training(m[TEACHER], batch.x_tgt, outputs[2], cfg)


def random_zoom(x: torch.Tensor, max_zoom: float, *, share: float = 1.0) -> torch.Tensor:
    """The first round(share * B) images of x (B, C, H, W) zoomed in about their centres, each
    by its own factor drawn from U(1, max_zoom), bilinear, the others left as they are; zooming
    in only, so every output pixel samples inside the image."""
    k = round(share * x.size(0))
    zoomed = zoom_in(x[:k], 1 + torch.rand(k, device=x.device) * (max_zoom - 1))
    return torch.cat([zoomed, x[k:]]) if k < x.size(0) else zoomed


def random_shift_scale(x: torch.Tensor) -> torch.Tensor:
    """Each image of x (B, C, H, W) scaled by U(0.9, 1.1) and shifted by up to a tenth of its
    size each way, bilinear, with the border pixels repeated outside the image."""
    b = x.size(0)
    scale = 0.9 + 0.2 * torch.rand(b, device=x.device)
    shifts = (torch.rand(b, 2, device=x.device) * 2 - 1) * 0.2
    return zoom_in(x, scale, shifts, padding="border")


def random_channels(x: torch.Tensor) -> torch.Tensor:
    """Each colour image of x (B, C, H, W) in [-1, 1] with its C channels in its own random
    order and, for about half of the images, negated: the shapes, and so the classes, stay; the
    colours do not (--target-recolour). One-channel images are returned as they are."""
    b, c = x.shape[:2]
    if c == 1:
        return x
    order = torch.rand(b, c, device=x.device).argsort(1)
    shuffled = x.gather(1, order[:, :, None, None].expand_as(x))
    negate = torch.rand(b, 1, 1, 1, device=x.device) >= 0.5
    return torch.where(negate, -shuffled, shuffled)


def self_training(teacher: nn.Module, x_tgt: torch.Tensor, student_logits, cfg) -> torch.Tensor:
    """Cross-entropy of the student's logits on (shifted) target images to the teacher's class
    on the plain images, over the images where the teacher's probability exceeds
    --target-threshold (or, with --target-class-thresholds, its class's threshold), divided by
    the batch size (few confident images: a small loss); plus --target-balance times
    class_balance of the student's predictions."""
    with torch.no_grad(), eval_mode(teacher):
        probs = teacher(x_tgt).float().softmax(1)
    confidence, labels = probs.max(1)
    threshold = cfg.target_threshold
    if cfg.target_class_thresholds:
        shares = teacher.confident_shares
        threshold = class_thresholds(shares, confidence, labels, threshold)[labels]
    per_image = nn.functional.cross_entropy(student_logits.float(), labels, reduction="none")
    pseudo = (per_image * (confidence > threshold)).mean()
    if cfg.target_balance == 0:
        return pseudo
    running = getattr(teacher, "predicted_shares", None)
    balance = class_balance(
        student_logits, cfg.target_balance_floor, running=running, decay=cfg.target_balance_decay
    )
    return pseudo + cfg.target_balance * balance


def class_thresholds(shares, confidence, labels, threshold: float) -> torch.Tensor:
    """FlexMatch's class-wise thresholds (Zhang et al. 2021), (K,): shares (K,), the running
    share of the target images that the teacher labels each class with a probability above
    threshold, is first updated in place with this batch's (confidence, labels (B,); under
    torchrun, every rank's batch; decay SHARES_DECAY per step); a class whose share is b times
    the largest then gets threshold * b / (2 - b), never below MIN_CLASS_THRESHOLD. A class the
    teacher seldom labels confidently (a hard one, or a rare one) so gets pseudo-labels at a
    lower confidence."""
    confident = torch.bincount(labels[confidence > threshold], minlength=shares.numel())
    move_shares(shares, confident, labels.numel(), SHARES_DECAY)
    b = shares / shares.max().clamp(min=1e-8)
    return (threshold * b / (2 - b)).clamp(min=min(MIN_CLASS_THRESHOLD, threshold))


def move_shares(shares: torch.Tensor, counts: torch.Tensor, n: int, decay: float) -> None:
    """shares (K,) moved in place towards counts (K,) / n, a batch's per-class counts (or sums
    of probabilities) over its n images: shares = decay * shares + (1 - decay) * counts / n.
    Under torchrun counts and n are first summed over every rank, so each rank keeps the same
    shares."""
    total = distributed.sum_all(torch.cat([counts, counts.new_tensor([n])])).to(shares)
    shares.mul_(decay).add_(total[:-1] / total[-1], alpha=1 - decay)


def class_balance(
    logits: torch.Tensor, floor: float = 1.0, *, running=None, decay: float = 0.0
) -> torch.Tensor:
    """How far the batch's mean predicted distribution over K classes (logits (B, K) -> ())
    falls short of floor / K on each class, summed and divided by floor: 0 when every class
    gets at least that share, (K - 1) / K when all are one class. floor 1 pushes towards an
    even spread; a smaller floor leaves a target whose classes are not equally frequent (USPS
    has twice as many 0s as 9s) alone and only keeps self-training from dropping a class
    (French et al. 2018's class balance, SHOT's diversity term, as a hinge).

    With running (K,), the shares' running mean (--target-balance-decay), it is first moved in
    place towards this batch's mean (under torchrun, every rank's), and the hinge is taken on it:
    a class is short when its share over the last ~1 / (1 - decay) batches is, not when one batch
    of a rare class happens to hold few of it. The gradient is still the batch mean's."""
    mean = logits.float().softmax(1).mean(0)
    if running is not None:
        move_shares(running, mean.detach() * logits.size(0), logits.size(0), decay)
        mean = running + (mean - mean.detach())  # the running value, the batch's gradient
    shortfall = (floor / logits.size(1) - mean).clamp(min=0)
    return shortfall.sum() / floor


def random_colours(x: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) in [-1, 1] with, per image and channel, -1 (background) sent to a random
    level and 1 (foreground) to a level that differs from it by 0.5..2 in either direction;
    the result stays in [-1, 1]. Source images recoloured so a judge learns shapes, not colours."""
    shape = (x.size(0), x.size(1), 1, 1)
    sign = torch.randint(0, 2, shape, device=x.device) * 2 - 1
    contrast = sign * (0.5 + 1.5 * torch.rand(shape, device=x.device))
    low, high = (-1 - contrast).clamp(min=-1), (1 - contrast).clamp(max=1)
    background = low + (high - low) * torch.rand(shape, device=x.device)
    return background + (x.float() + 1) / 2 * contrast


def g_step(m: nn.ModuleDict, opts: dict, batch, x_fake: torch.Tensor, cfg) -> dict:
    """G learns to fool the updated D, keep the label recoverable by T, and stay close to the
    source (masked PMSE); with --consistency-weight, also keep the judge's class (CyCADA). D, T
    and the judge are frozen: no gradients, BN statistics left alone."""
    judges = [m[SOURCE_JUDGE]] if SOURCE_JUDGE in m else []
    with frozen(m["discriminator"], m["classifier"], *judges):
        style_loss = losses.g_loss(m["discriminator"](x_fake))
        task_g_loss = losses.task_loss(m["classifier"](x_fake), batch.y_src)
        consistency_loss = consistency(m, batch.x_src, x_fake, cfg)
    g_loss = cfg.style_weight * style_loss + cfg.task_in_g_weight * task_g_loss
    g_loss = g_loss + cfg.consistency_weight * consistency_loss
    content_loss = torch.zeros((), device=x_fake.device)
    if cfg.content_weight > 0:
        content_loss = losses.masked_pmse(x_fake, batch.x_src, batch.mask_src)
        g_loss = g_loss + cfg.content_weight * content_loss
    optimize(opts["g"], g_loss, cfg.clip_grad_norm)
    return {
        "g_loss": g_loss.detach(),
        "style_loss": style_loss.detach(),
        "content_loss": content_loss.detach(),
        **({"consistency_loss": consistency_loss.detach()} if cfg.consistency_weight > 0 else {}),
    }


def consistency(m: nn.ModuleDict, x_src: torch.Tensor, x_fake: torch.Tensor, cfg) -> torch.Tensor:
    """Semantic consistency of x_fake with x_src under the --consistency-judge; 0 when off.

    The source judge never sees adapted images with source labels, so G cannot make it accept a
    changed digit; T can be (it learns from G's outputs in the D-step), the loophole the source
    judge closes. Call with the judge frozen."""
    if cfg.consistency_weight == 0:
        return torch.zeros((), device=x_fake.device)
    judge = m[SOURCE_JUDGE] if SOURCE_JUDGE in m else m["classifier"]
    src_logits, fake_logits = judge(torch.cat([x_src, x_fake])).chunk(2)
    return losses.semantic_consistency(
        fake_logits,
        src_logits,
        changed_factor=cfg.consistency_changed_factor,
        changed_confidence=cfg.consistency_changed_confidence,
    )


def evaluate(m: nn.ModuleDict, data) -> dict:
    """The teacher where there is one (--target-weight), else T, on the held-out splits
    (metrics.held_out); with a teacher, T's own scores on the target splits too, as student_*
    (not on the source test split: the teacher's score there tells as much, and it costs an
    evaluation a third of its time)."""
    out = held_out(predictor(m), data)
    if TEACHER in m:
        student = held_out(m[CLASSIFIER], data, source=False)
        out.update({f"student_{k}": v for k, v in student.items()})
    return out


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
