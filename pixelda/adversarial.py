"""The loop every method shares: steps, learning rate, logging, evaluation, grids, checkpoints.

Each method's step stays explicit code in pixelda/methods/; for PixelDA and the cGAN it is a
D-step then a G-step. The pieces those steps share live in pixelda/helpers.py.
"""

import copy
import dataclasses
import math
import signal
import time
from dataclasses import dataclass, field

from torch import nn
from tqdm import tqdm

from . import checkpoint, distributed, speed, validators
from .errors import UserError
from .fileio import atomic_save_png
from .plots import grid_image
from .schedules import learning_rate, run_progress


class TrainingDiverged(UserError):
    pass


class StopRequest:
    """The first Ctrl-C asks the loop to stop after the current step and save a checkpoint."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class Watch:
    """What warn_if_broken remembers between evaluations; checkpointed, so a resumed run warns
    as an uninterrupted one would."""

    label_keeping: list = field(default_factory=list)  # validator_label_keeping so far
    rare_class_before: bool = False  # did the last evaluation flag a rare target class?
    # target_class_counts, step and --select-by score of the best label-free evaluation so far
    class_reference: dict = field(default_factory=dict)
    shrinking_before: bool = False  # did the last evaluation flag a shrinking target class?
    warnings: list = field(default_factory=list)  # every warning so far, "step N: why"


@dataclass
class LoopState:
    step: int = 0
    wall_s: float = 0.0  # whole loop, evaluation and checkpoints included, over all resumes
    train_s: float = 0.0  # training steps only
    last_eval: dict = field(default_factory=dict)
    interrupted: bool = False
    out_of_time: bool = False  # stopped early by cfg.max_minutes: a finished, shorter run
    skipped_steps: int = 0  # steps undone by --on-nan skip, over all resumes
    lr: float = 0.0  # the learning rate of the last step
    best: dict = field(default_factory=dict)  # {"step", "metric", "value"} of best.pt
    watch: Watch = field(default_factory=Watch)


@dataclass
class Run:
    """What the loop works on, wired together by the entry point."""

    cfg: object
    method: object
    models: nn.ModuleDict
    opts: dict
    batches: object
    data: object
    fixed: object
    rundir: object
    info: dict
    loggers: list = field(default_factory=list)  # experiment trackers (pixelda/loggers.py)
    # What train_step calls: `models` itself, or under torchrun their DDP wrappers.
    train_models: nn.ModuleDict | None = None
    # The fixed images of the label-free validators (validators.build_data); None: none logged.
    validation: validators.ValidationData | None = None


def log_record(run: Run, record: dict) -> None:
    """One record to metrics.jsonl and to every experiment tracker (rank 0 only)."""
    if not distributed.is_main():
        return
    run.rundir.log(record)
    for logger in run.loggers:
        logger.log(record)


def _check_finite(losses: dict, step: int, rundir, on_nan: str = "stop") -> bool:
    """True if every loss is finite. Otherwise, with on_nan "stop", raise before anything of
    this step is logged or checkpointed, so the last good checkpoint stays as it was."""
    bad = ", ".join(f"{k} is {v}" for k, v in losses.items() if not math.isfinite(v))
    if bad and on_nan == "stop":
        raise TrainingDiverged(
            f"step {step}: {bad}; training stopped, the last good checkpoint is kept in "
            f"{rundir.ckpt} (resume with --on-nan skip to skip such steps)"
        )
    return not bad


def snapshot(run: Run) -> dict:
    """A copy of the models' and optimizers' state, which --on-nan skip restores after a bad
    step. Taken before every step, and only then: it costs a copy of the weights and the
    optimizer state in memory."""
    return {
        "models": copy.deepcopy(run.models.state_dict()),
        "opts": {name: copy.deepcopy(o.state_dict()) for name, o in run.opts.items()},
    }


def restore(run: Run, saved: dict) -> None:
    run.models.load_state_dict(saved["models"])
    for name, opt in run.opts.items():
        opt.load_state_dict(saved["opts"][name])


def save_checkpoint(run: Run, state: LoopState, path=None) -> None:
    """Rank 0 writes the checkpoint (ckpt.pt unless `path`); under torchrun it holds every
    rank's random state."""
    distributed.sync_buffers(run.models)
    rng_ranks = distributed.gather(checkpoint.rng_state())
    if not distributed.is_main():
        return
    checkpoint.save(
        path or run.rundir.ckpt,
        best=state.best,
        watch=dataclasses.asdict(state.watch),
        config=dataclasses.asdict(run.cfg),
        data_info=run.info,
        step=state.step,
        wall_s=state.wall_s,
        train_s=state.train_s,
        models=run.models,
        optimizers=run.opts,
        batches=run.batches.state_dict(),
        skipped_steps=state.skipped_steps,
        rng_ranks=rng_ranks if len(rng_ranks) > 1 else None,
    )


# What best.pt keeps: the first of these an evaluation reports, and whether higher is better.
SELECTION_METRICS = (("target_val_acc", True), ("target_val_rmse", False))


def selection(metrics: dict, select_by: str = "") -> tuple[str, float, bool] | None:
    """(metric, value, higher is better) by which best.pt is chosen: the labeled validation
    score, else the label-free validator `select_by` (--select-by); None if there is neither."""
    for name, higher in SELECTION_METRICS:
        if metrics.get(name) is not None:
            return name, metrics[name], higher
    key = f"validator_{select_by}"
    if select_by and metrics.get(key) is not None:
        return key, metrics[key], validators.HIGHER_IS_BETTER[select_by]
    return None


def warn_if_broken(run: Run, state: LoopState, metrics: dict) -> None:
    """A console line when G stops keeping labels (validators.keeping_flag: T's agreement
    between source and adapted images low, or fallen from the run's best), and one when T
    stops predicting a class on the target (validators.rare_class_flag at this evaluation and
    the one before: a run's first evaluation often reads a hard class too rarely), and one
    when T gives a class ever fewer target images (shrinking_class, at this evaluation and the
    one before); rank 0 only. Each is also kept in state.watch.warnings for the summary."""
    flags, watch = [], state.watch
    value = metrics.get("validator_label_keeping")
    if value is not None:
        watch.label_keeping.append(value)
        flag = validators.keeping_flag(value, max(watch.label_keeping))
        if flag:
            flags.append(f"{flag}: the generator may be changing the source's class")
    if "target_rarest_share" in metrics:
        classes = run.info.get("classes")
        flag = validators.rare_class_flag(
            metrics["target_rarest_class"], metrics["target_rarest_share"], classes
        )
        if flag and watch.rare_class_before:
            flags.append(f"{flag}: the classifier may have lost that class")
        watch.rare_class_before = bool(flag)
    flag = shrinking_class(run, state, metrics)
    if flag and watch.shrinking_before:
        flags.append(f"{flag}: the classifier may be drifting that class into others")
    watch.shrinking_before = bool(flag)
    watch.warnings += [f"step {state.step}: {flag}" for flag in flags]
    if not distributed.is_main():
        return
    for flag in flags:
        tqdm.write(
            f"warning: step {state.step}: {flag} (python -m pixelda.select RUN shows every "
            f"evaluation)"
        )


def shrinking_class(run: Run, state: LoopState, metrics: dict) -> str:
    """validators.shrinking_class_flag of this evaluation's target class counts against those of
    the evaluation with the best label-free --select-by score so far; "" when this one beats it
    (and becomes the reference). Adds target_shrinking_class and _ratio to `metrics`, and takes
    the counts out of them (the log keeps scalars)."""
    counts = metrics.pop("target_class_counts", None)
    name = f"validator_{run.cfg.select_by}"
    if counts is None or metrics.get(name) is None:
        return ""
    ref = state.watch.class_reference
    if ref:
        k, ratio = validators.shrinking_class(counts, ref["counts"])
        metrics["target_shrinking_class"], metrics["target_shrinking_ratio"] = k, ratio
    if not ref or validators.better(run.cfg.select_by, metrics[name], ref["value"]):
        state.watch.class_reference = {"counts": counts, "step": state.step, "value": metrics[name]}
        return ""  # still improving: early on, classes come and go as T learns
    return validators.shrinking_class_flag(k, ratio, ref["step"], run.info.get("classes"))


def keep_best(run: Run, state: LoopState, metrics: dict) -> None:
    """Write best.pt when this evaluation's validation score beats every earlier one's."""
    chosen = selection(metrics, run.cfg.select_by)
    if chosen is None:
        return
    name, value, higher = chosen
    best = state.best.get("value")
    if (
        best is None
        or state.best.get("metric") != name
        or (value > best if higher else value < best)
    ):
        state.best = {"step": state.step, "metric": name, "value": value}
        save_checkpoint(run, state, run.rundir.best)


def evaluate(run: Run, state: LoopState) -> dict:
    """Held-out metrics; under torchrun every rank scores its share of each split."""
    distributed.sync_buffers(run.models)
    metrics = run.method.evaluate(run.models, run.data)
    metrics.update(validators.compute(run.models, run.cfg.method, run.validation))
    state.last_eval = metrics
    keep_best(run, state, metrics)
    warn_if_broken(run, state, metrics)
    log_record(
        run,
        {
            "kind": "eval",
            "step": state.step,
            "wall_s": round(state.wall_s, 3),
            "train_s": round(state.train_s, 3),
            **metrics,
        },
    )
    return metrics


def write_grid(run: Run, state: LoopState) -> None:
    if not distributed.is_main():
        return
    picture = grid_image(run.method.grid(run.models, run.fixed))
    atomic_save_png(picture, run.rundir.samples / f"step_{state.step:07d}.png")
    atomic_save_png(picture, run.rundir.samples / "latest.png")
    for logger in run.loggers:
        logger.image("samples", picture, state.step)


def _out_of_time(cfg, wall_s: float) -> bool:
    """Has the run (all its resumes) used up its --max-minutes wall-clock budget?"""
    return cfg.max_minutes > 0 and wall_s >= cfg.max_minutes * 60


def _postfix(losses: dict, state: LoopState) -> dict:
    post = {k.removesuffix("_loss"): f"{float(v):.3f}" for k, v in losses.items()}
    for key, short in (("target_val_acc", "val_acc"), ("conditional_acc", "cond_acc")):
        if state.last_eval.get(key) is not None:
            post[short] = f"{state.last_eval[key]:.2%}"
    return post


def fit(run: Run, state: LoopState) -> LoopState:
    """Train from state.step to cfg.steps; evaluate, sample and checkpoint along the way."""
    cfg, rundir = run.cfg, run.rundir
    bar = tqdm(
        total=cfg.steps,
        initial=state.step,
        desc=cfg.method,
        disable=not cfg.progress or not distributed.is_main(),
        dynamic_ncols=True,
        unit="step",
    )
    models = run.train_models if run.train_models is not None else run.models
    with StopRequest() as stop:
        stopping, state.out_of_time = False, _out_of_time(cfg, state.wall_s)
        while state.step < cfg.steps and not stopping and not state.out_of_time:
            t0 = time.perf_counter()
            progress = run_progress(cfg, state.step, state.wall_s)  # drives lr and DANN's lambda
            state.lr = learning_rate(cfg, state.step, progress)
            for opt in run.opts.values():
                for group in opt.param_groups:
                    group["lr"] = state.lr
            saved = snapshot(run) if cfg.on_nan == "skip" else None
            batch = run.batches.next()
            with speed.autocast(cfg, batch.x_src.device):
                losses = run.method.train_step(models, run.opts, batch, cfg, progress)
            # Decided once per step, before the final evaluation and checkpoint it triggers,
            # and alike on every rank: under torchrun the losses and the clock are averaged over
            # ranks (so the budget, the schedules and the learning rate agree), and a Ctrl-C seen
            # by any rank stops them all after this step.
            losses, (stopping,), clock = distributed.agree(
                {k: float(v) for k, v in losses.items()},
                stop.requested,
                clock=state.wall_s + time.perf_counter() - t0,
            )
            state.out_of_time = _out_of_time(cfg, clock)
            state.step += 1
            if not _check_finite(losses, state.step, rundir, cfg.on_nan):
                # --on-nan skip: undo the step; its batch is used up and the next step goes on.
                restore(run, saved)
                state.skipped_steps += 1
                if distributed.is_main():
                    rundir.log({"kind": "skipped", "step": state.step, **_as_text(losses)})
                losses = {}
            state.train_s += time.perf_counter() - t0
            state.wall_s = clock
            final = state.step == cfg.steps or state.out_of_time
            t0 = time.perf_counter()
            _periodic(run, state, losses, final=final)
            state.wall_s += time.perf_counter() - t0
            bar.update(1)
            if state.step % 10 == 0 or final:
                bar.set_postfix(_postfix(losses, state), refresh=False)
        state.interrupted = stopping and state.step < cfg.steps
    bar.close()
    if state.interrupted:
        save_checkpoint(run, state)
    elif not state.last_eval:  # resumed a finished run: nothing trained, still report
        evaluate(run, state)
    return state


def _as_text(losses: dict) -> dict:
    """Non-finite values as strings ("nan", "inf"): strict JSON has no NaN."""
    return {k: v if math.isfinite(v) else str(v) for k, v in losses.items()}


def _periodic(run: Run, state: LoopState, losses: dict, *, final: bool) -> None:
    """Log (unless the step was skipped: no losses), evaluate, sample and checkpoint on schedule."""
    cfg, step = run.cfg, state.step
    if losses and (step % cfg.log_every == 0 or final):
        log_record(
            run,
            {
                "kind": "train",
                "step": step,
                "lr": state.lr,
                "wall_s": round(state.wall_s, 3),
                "train_s": round(state.train_s, 3),
                **losses,
            },
        )
    if step % cfg.eval_every == 0 or final:
        evaluate(run, state)
    if step % cfg.sample_every == 0 or final:
        write_grid(run, state)
    if step % cfg.checkpoint_every == 0 or final:
        save_checkpoint(run, state)
