"""How far a run is through its budget, and the learning rate that follows from it."""

import math


def run_progress(cfg, step: int, wall_s: float) -> float:
    """How much of its budget the run has used, 0..1: of its --steps or, when --max-minutes is
    set and ends it sooner, of its wall-clock minutes."""
    used = step / cfg.steps
    if cfg.max_minutes > 0:
        used = max(used, wall_s / (cfg.max_minutes * 60))
    return min(used, 1.0)


def lr_cycles(cfg) -> int:
    """--lr-cycle-minutes: how many equal cycles the linear schedule restarts in, 1 (no restart)
    unless --max-minutes is longer than one cycle."""
    if cfg.lr_cycle_minutes <= 0 or cfg.max_minutes <= cfg.lr_cycle_minutes:
        return 1
    return math.ceil(cfg.max_minutes / cfg.lr_cycle_minutes)


def learning_rate(cfg, step: int, progress: float) -> float:
    """--lr-schedule step: staircase exponential decay, lr * lr_decay ** (step // lr_decay_steps)
    (official code); linear: lr * (1 - progress), down to 0 when the budget is spent, or, in n
    cycles (lr_cycles), down to 0 at the end of each, cycle k (from 0) starting at
    lr * lr_cycle_decay ** k (warm restarts, Loshchilov & Hutter 2017), each held at its
    starting lr for the first lr_hold of it (warmup-stable-decay without the warm-up, Hu et al.
    2024); annealed:
    lr / (1 + 10 p)^0.75 (Ganin & Lempitsky 2015: mu_p = mu_0 / (1 + alpha p)^beta)."""
    if cfg.lr_schedule == "linear":
        n = lr_cycles(cfg)
        cycle = min(math.floor(progress * n), n - 1)
        left = 1.0 - (progress * n - cycle)  # of this cycle, 1 -> 0
        return cfg.lr * cfg.lr_cycle_decay**cycle * min(1.0, left / (1.0 - cfg.lr_hold))
    if cfg.lr_schedule == "annealed":
        return cfg.lr / (1.0 + 10.0 * progress) ** 0.75
    return cfg.lr * cfg.lr_decay ** (step // cfg.lr_decay_steps)
