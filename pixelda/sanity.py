"""Cheap checks of a training config's values that config.validate leaves to this module: signs,
the --mask-from-background colour, finite numbers in the optimizer's ranges, the ranges of the
flags beyond the papers, and a lower bound on the memory a step needs, so an absurd --batch-size,
--latent-dim or width is refused before anything is allocated or written."""

import dataclasses
import math
import os

from .errors import UserError

# torch.manual_seed takes at most a 64-bit value; numpy's seeding wants it non-negative.
MAX_SEED = 2**63 - 1
# More residual blocks than this is a typo, and building them alone would take minutes.
MAX_BLOCKS = 256
CHANNELS = (0, 1, 3)


def parse_rgb(text: str, flag: str = "--mask-from-background") -> tuple[int, int, int]:
    """'R,G,B' with each value 0..255 -> (R, G, B), or a UserError naming the flag."""
    try:
        rgb = tuple(int(p) for p in text.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise UserError(f"{flag}: expected R,G,B with values 0..255, got {text!r}")
    return rgb


def check(cfg) -> None:
    """Refuse a value no run can use; `cfg` is a TrainConfig."""
    if not 0 <= cfg.seed <= MAX_SEED:
        raise UserError(f"--seed: expected an integer 0..2**63-1, got {cfg.seed}")
    if cfg.clip_grad_norm < 0:
        raise UserError(
            f"--clip-grad-norm: expected >= 0 (0: no clipping), got {cfg.clip_grad_norm}"
        )
    if cfg.mask_from_background:
        parse_rgb(cfg.mask_from_background)
    if not 0 <= cfg.mask_tolerance <= 255:
        raise UserError(f"--mask-tolerance: expected 0..255, got {cfg.mask_tolerance}")
    if getattr(cfg, "channels", 0) not in CHANNELS:
        raise UserError(f"--channels: expected 1, 3 or 0 (the data's own), got {cfg.channels}")
    if cfg.g_blocks > MAX_BLOCKS:
        raise UserError(f"--g-blocks: expected at most {MAX_BLOCKS}, got {cfg.g_blocks}")
    if cfg.threads > 4 * (os.cpu_count() or 1):
        raise UserError(f"--threads: {cfg.threads} is more than 4x this machine's CPUs")
    check_memory(cfg)


def check_beyond_paper(cfg) -> None:
    """The ranges of the flags beyond the papers."""
    if cfg.consistency_changed_factor < 1:
        value = cfg.consistency_changed_factor
        raise UserError(f"--consistency-changed-factor: expected >= 1, got {value}")
    for name in ("consistency_weight", "target_weight", "target_balance"):
        if getattr(cfg, name) < 0:
            raise UserError(f"--{name.replace('_', '-')}: expected >= 0, got {getattr(cfg, name)}")
    names = ("ema_decay", "teacher_decay", "target_threshold", "target_balance_decay")
    for name in (*names, "consistency_changed_confidence"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            value = getattr(cfg, name)
            raise UserError(f"--{name.replace('_', '-')}: expected a number in [0, 1), got {value}")
    if not 0.0 < cfg.target_balance_floor <= 1.0:
        value = cfg.target_balance_floor
        raise UserError(f"--target-balance-floor: expected a fraction in (0, 1], got {value}")
    if not 1.0 <= cfg.adapted_zoom <= 4.0:
        raise UserError(f"--adapted-zoom: expected a factor in [1, 4], got {cfg.adapted_zoom}")
    if not 0.0 <= cfg.adapted_zoom_share <= 1.0:
        raise UserError(
            f"--adapted-zoom-share: expected a fraction in [0, 1], got {cfg.adapted_zoom_share}"
        )


def check_numbers(cfg) -> None:
    """Finite floats, the optimizer's own ranges (before torch.optim.Adam can object), and the
    models' and the budget's."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"--{f.name.replace('_', '-')}: expected a finite number, got {value}")
    if cfg.lr <= 0 or cfg.lr_decay <= 0:
        raise UserError(
            f"--lr and --lr-decay: expected positive numbers, got {cfg.lr}, {cfg.lr_decay}"
        )
    if cfg.lr_cycle_minutes < 0 or not 0.0 < cfg.lr_cycle_decay <= 1.0:
        raise UserError(
            "--lr-cycle-minutes, --lr-cycle-decay: expected >= 0 and a number in (0, 1], got "
            f"{cfg.lr_cycle_minutes}, {cfg.lr_cycle_decay}"
        )
    if not 0.0 <= cfg.lr_hold < 1.0:
        raise UserError(f"--lr-hold: expected a share of the budget in [0, 1), got {cfg.lr_hold}")
    if not 0.0 <= cfg.beta1 < 1.0:
        raise UserError(f"--beta1: expected a number in [0, 1), got {cfg.beta1}")
    if cfg.d_noise < 0:
        raise UserError(f"--d-noise: expected a standard deviation >= 0, got {cfg.d_noise}")
    if not 0.0 <= cfg.d_dropout < 1.0:
        raise UserError(f"--d-dropout: expected a probability in [0, 1), got {cfg.d_dropout}")
    if cfg.max_minutes < 0:
        raise UserError(f"--max-minutes: expected >= 0 (0: no limit), got {cfg.max_minutes}")
    if cfg.latent_dim < 0 or cfg.g_blocks < 0 or cfg.threads < 0:
        raise UserError("--latent-dim, --g-blocks and --threads must be >= 0")


def least_bytes(cfg) -> dict[str, int]:
    """A lower bound on what one training step holds, by the flag that drives each part: model
    weights (with their gradients and Adam's two moments) and one batch's feature maps, float32."""
    s2, gw, dw = cfg.image_size**2, cfg.g_width, cfg.d_width
    latent, embed, g_convs, g_maps = 0, 0, 0, 0  # the baselines have no generator
    if cfg.method == "pixelda":
        latent, g_convs, g_maps = cfg.latent_dim * s2, 18 * gw * gw * cfg.g_blocks, gw
    elif cfg.method == "cgan":  # [z, embedding(y)] -> linear -> (2 width, S/4, S/4)
        latent, embed = (cfg.latent_dim * 2 * gw * s2 // 16, cfg.embed_dim * 2 * gw * s2 // 16)
        g_convs, g_maps = 16 * gw * gw, 2 * gw
    return {
        "--latent-dim": 16 * latent,
        "--embed-dim": 16 * embed,
        "--g-width": 16 * g_convs,
        "--d-width": 16 * 18 * dw * dw,
        "--batch-size": 4 * cfg.batch_size * s2 * (g_maps + dw + 3),
    }


def memory_limit() -> int:
    """This machine's physical memory, plus the first GPU's where there is one."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    import torch  # only asked when a config would not fit in the host's memory

    if torch.cuda.is_available():
        total += torch.cuda.get_device_properties(0).total_memory
    return total


def check_memory(cfg) -> None:
    need = least_bytes(cfg)
    if sum(need.values()) <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"):
        return
    limit = memory_limit()
    if sum(need.values()) > limit:
        flag = max(need, key=need.get)
        raise UserError(
            f"{flag}: {getattr(cfg, flag[2:].replace('-', '_'))} needs at least "
            f"{sum(need.values()) / 1e9:,.0f} GB for one training step, more than this "
            f"machine's {limit / 1e9:,.0f} GB of memory"
        )


def check_export_memory(*, variants: int, batch: int, shape: tuple[int, ...]) -> None:
    """Refuse an export whose generator call (`variants` x `batch` images of `shape`, float32
    in and out, plus the uint8 copy) cannot fit in memory, before it is allocated."""
    need = variants * batch * math.prod(shape) * 9
    if need > memory_limit():
        raise UserError(
            f"--variants: {variants} variants of a batch of {batch} need at least "
            f"{need / 1e9:,.0f} GB, more than this machine's {memory_limit() / 1e9:,.0f} GB of "
            f"memory; lower --variants or --batch-size"
        )
