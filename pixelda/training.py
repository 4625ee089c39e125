"""Training a resolved config: resume checks, building a run (data, models, optimizers, batches),
the loop (pixelda/adversarial.py), and the summary and report at the end. The Python API
(pixelda.train) and the command line (python -m pixelda.train) both come through here."""

import dataclasses
import itertools
import os
import sys
from pathlib import Path

import torch

from . import __version__, checkpoint, distributed, loggers, speed, validators
from .adversarial import LoopState, Run, Watch, fit
from .batches import Batches
from .config import TrainConfig, resolve
from .data import DataOptions, describe
from .errors import UserError
from .locks import hold
from .methods import METHODS, DataInfo
from .ownership import check_out_path
from .plots import save_curves
from .rundata import fixed_samples, load_data
from .rundir import RunDir
from .runtime import hardware, pick_device

# Flags that may change when a run is resumed; any other must match the checkpoint's config.
RESUMABLE = {
    "steps",
    "eval_every",
    "sample_every",
    "log_every",
    "checkpoint_every",
    "device",
    "progress",
    "logger",
    "threads",
    "data_root",
    "photos",
    "cache_dir",
    "download",
    "resume",
    "out",
    "max_minutes",
    "on_nan",
    "sync_bn",
    "stream",
    # Speed settings: same weights, optimizer state and checkpoint format (pixelda/speed.py)
    "channels_last",
    "fused_adam",
    "compile",
    "amp",
}


def fresh_out(method: str) -> str:
    """runs/METHOD, or the first of runs/METHOD-2, -3, ... that is missing or empty."""
    candidates = (
        Path("runs") / (method if n == 1 else f"{method}-{n}") for n in itertools.count(1)
    )
    return str(next(p for p in candidates if not p.exists() or not any(p.iterdir())))


def config_from_overrides(overrides: dict) -> tuple[TrainConfig, dict | None]:
    """The run's config from TrainConfig field names -> values (what the flags set) and, with
    resume=True, its checkpoint (whose config wins over all but the RESUMABLE options)."""
    if not overrides.get("out"):
        if overrides.get("resume"):
            raise UserError("--resume: name the run to continue with --out RUN")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError("--out: required under torchrun (every process must name one folder)")
        overrides = {**overrides, "out": fresh_out(overrides.get("method", TrainConfig.method))}
    if not overrides.get("resume"):
        return resolve(overrides), None
    rundir = RunDir(overrides["out"])
    rundir.check(resume=True, overwrite=False)
    ckpt = checkpoint.load(rundir.ckpt)
    # An option the checkpoint lacks came after the run's pixelda: it keeps its off default
    # rather than the preset's, so the run resumes as it was started.
    fields = TrainConfig.__dataclass_fields__
    stored = {k: ckpt["config"].get(k, f.default) for k, f in fields.items() if f.init}
    for key, value in overrides.items():
        if key not in RESUMABLE and key in stored and stored[key] != value:
            flag = "--" + key.replace("_", "-")
            raise UserError(f"--resume: {flag} {value!r} differs from the run's {stored[key]!r}")
    changed = {k: v for k, v in overrides.items() if k in RESUMABLE}
    # A run started with --overwrite stores overwrite=True; resuming it must not inherit that.
    return resolve({**stored, **changed, "resume": True, "overwrite": False}), ckpt


def setup(cfg: TrainConfig, ckpt: dict | None) -> tuple[Run, LoopState]:
    """Load data, build models and optimizers (restored from ckpt when resuming); under
    torchrun, join the process group and wrap the trained models in DDP."""
    device = distributed.init(pick_device(cfg.device))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    announce(cfg, device)
    data = load_data(cfg)
    src = data.source_train
    info = DataInfo(
        channels=src.channels,
        image_size=cfg.image_size,
        num_outputs=src.num_classes or src.labels.size(1),
        classes=src.classes,
    )
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    method = METHODS[cfg.method]
    # A checkpoint holds the weights: --pretrained only chooses those of a fresh run.
    models = method.build(cfg if ckpt is None else dataclasses.replace(cfg, pretrained=False), info)
    if cfg.sync_bn:
        models = distributed.sync_batchnorm(models, device)
    models = speed.prepare_models(models, cfg, device)
    optimizers = method.optimizers(models, cfg)
    rank, world = distributed.rank(), distributed.world_size()
    batches = Batches(
        src,
        data.target_train,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        device=device,
        rank=rank,
        world_size=world,
        memory_format=speed.memory_format(cfg),
    )
    if world > 1:  # each rank its own noise, dropout and D input noise
        torch.manual_seed(cfg.seed + 1_000_003 * rank)
    state = LoopState() if ckpt is None else resume_state(ckpt, cfg, models, optimizers, batches)
    run = Run(
        cfg=cfg,
        method=method,
        models=models,
        opts=optimizers,
        batches=batches,
        data=data,
        fixed=fixed_samples(data, cfg, device),
        rundir=RunDir(cfg.out),
        info=info.to_dict(),
        train_models=distributed.wrap(models, optimizers, device),
        validation=validators.build_data(data, cfg.validation_images),
    )
    describe_data(data, info)
    return run, state


def announce(cfg: TrainConfig, device: torch.device) -> None:
    """One console line: method, data, device (rank 0)."""
    if not distributed.is_main():
        return
    opts, world = DataOptions.from_config(cfg), distributed.world_size()
    print(
        f"pixelda {cfg.method}: source {describe(cfg.source, opts)}"
        + ("" if cfg.method == "cgan" else f" -> target {describe(cfg.target, opts)}")
        + f"; device {device}"
        + (" (bf16 autocast)" if speed.amp_mode(cfg, device) == "bf16" else "")
        + (f"; {world} processes" if world > 1 else ""),
        file=sys.stderr,
        flush=True,
    )


def describe_data(data, info: DataInfo) -> None:
    """The size of every split and the data's notes, on the console (rank 0)."""
    if not distributed.is_main():
        return
    splits = (
        ("source train", data.source_train),
        ("target train", data.target_train),
        ("target validation", data.target_val),
        ("target test", data.target_test),
    )
    counts = ", ".join(f"{len(split)} {name}" for name, split in splits if split is not None)
    shape = f"{info.channels}x{info.image_size}x{info.image_size}"
    print(f"data: {counts} images of {shape}", file=sys.stderr, flush=True)
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr, flush=True)


def resume_state(ckpt: dict, cfg: TrainConfig, models, optimizers: dict, batches) -> LoopState:
    """Models, optimizers, batch order and random state as the checkpoint left them."""
    checkpoint.load_models(models, ckpt["models"])
    for name, opt in optimizers.items():
        speed.load_optimizer(opt, ckpt["optimizers"][name])
    batches.load_state_dict(ckpt["batches"])
    restore_rng(ckpt, cfg)
    return LoopState(
        step=ckpt["step"],
        wall_s=ckpt["wall_s"],
        train_s=ckpt["train_s"],
        skipped_steps=ckpt.get("skipped_steps", 0),
        best=dict(ckpt.get("best") or {}),
        watch=Watch(**(ckpt.get("watch") or {})),
    )


def restore_rng(ckpt: dict, cfg: TrainConfig) -> None:
    """Each rank's random state as the checkpoint left it, so a resumed run draws what an
    uninterrupted one would; a run resumed on a different number of ranks starts fresh
    per-rank streams instead."""
    rank, world = distributed.rank(), distributed.world_size()
    per_rank = ckpt.get("rng_ranks") or [ckpt["rng"]]
    if len(per_rank) == world:
        checkpoint.set_rng_state(per_rank[rank])
    elif world == 1:
        checkpoint.set_rng_state(ckpt["rng"])
    else:
        torch.manual_seed(cfg.seed + 1_000_003 * rank + ckpt["step"])


def summarize(run: Run, state: LoopState, device: str) -> dict:
    cfg, world = run.cfg, distributed.world_size()
    return {
        "method": cfg.method,
        "preset": cfg.preset,
        "steps": state.step,
        "wall_s": round(state.wall_s, 2),
        "train_s": round(state.train_s, 2),
        "source_images_per_s": round(
            state.step * cfg.batch_size * world / max(state.train_s, 1e-9), 1
        ),
        "processes": world,
        "amp": speed.amp_mode(cfg, device),
        **{k: v for k, v in state.last_eval.items() if k.startswith("target_")},
        "source_test_acc": state.last_eval.get("source_test_acc"),
        "best": state.best or None,
        "metrics": state.last_eval,
        "device": device,
        "hardware": hardware(device),
        "source": cfg.source,
        "target": None if cfg.method == "cgan" else cfg.target,
        "data_root": cfg.data_root or "embedded",
        "pixelda_version": __version__,
        "torch_version": torch.__version__,
        "skipped_steps": state.skipped_steps,
        "warnings": state.watch.warnings,  # the console's warning: lines, "step N: why"
        "finished": not state.interrupted,
        "out_of_time": state.out_of_time,
    }


def train_config(cfg: TrainConfig, ckpt: dict | None = None) -> dict:
    """Train a resolved config (resuming from ckpt when given) -> the run's summary.

    Everything the CLI does; a bad input raises UserError before anything is written. Under
    torchrun every rank trains and evaluates, and rank 0 alone writes the run directory,
    holding its lock (pixelda/locks.py) throughout."""
    rundir = RunDir(cfg.out)
    with hold(check_out_path(cfg.out)), rundir.removed_unless_started(resume=cfg.resume):
        return _train_locked(cfg, ckpt, rundir)


def _train_locked(cfg: TrainConfig, ckpt: dict | None, rundir: RunDir) -> dict:
    loggers.require(cfg.logger)
    rundir.check(resume=cfg.resume, overwrite=cfg.overwrite)
    run, state = setup(cfg, ckpt)
    main_rank = distributed.is_main()
    if main_rank:
        rundir.create(overwrite=cfg.overwrite)
        rundir.write_json("config.json", dataclasses.asdict(cfg))
        if ckpt is not None:
            # After a crash: drop records past the checkpoint (and a line cut short), and the
            # temporary files of writes the crash interrupted.
            rundir.truncate_metrics(state.step)
            rundir.remove_partial_writes()
        run.loggers = loggers.open_loggers(cfg, rundir.path)
    try:
        state = fit(run, state)
    finally:
        for logger in run.loggers:
            logger.close()
    summary = summarize(run, state, str(next(run.models.parameters()).device))
    if main_rank:
        records = rundir.read_metrics()
        save_curves(records, rundir.path / "curves.png")
        loggers.write_csv(records, rundir.path / "metrics.csv")
        rundir.write_json("summary.json", summary)
        report(summary, state, rundir)
    distributed.barrier()  # the run directory is complete before any rank returns
    return summary


def report(summary: dict, state: LoopState, rundir: RunDir) -> None:
    if state.interrupted:
        print(
            f"interrupted at step {state.step}; checkpoint saved. Continue with: "
            f"python -m pixelda.train --out {rundir.path} --resume"
            + (" (or under torchrun, as it was started)" if summary["processes"] > 1 else ""),
            file=sys.stderr,
        )
    metrics = summary["metrics"].items()
    parts = [
        f"{k.removesuffix('_acc').replace('_', ' ')} accuracy {v:.2%}"
        for k, v in metrics
        if k.endswith("_acc")
    ]
    parts += [
        f"{k.removesuffix('_rmse').replace('_', ' ')} RMSE {v:.4g}"
        for k, v in metrics
        if k.endswith("_rmse")
    ]
    print(
        f"step {state.step}: "
        + (
            ", ".join(parts)
            or ("not evaluated" if state.interrupted else "no labeled held-out data")
        )
        + f" (held-out, eval mode); {summary['train_s']:.0f}s training; run in {rundir.path}"
    )
    if state.best:
        value = state.best["value"]
        shown = f"{value:.2%}" if state.best["metric"].endswith("_acc") else f"{value:.4g}"
        print(f"best.pt: step {state.best['step']}, {state.best['metric']} {shown}")
    if summary["warnings"]:
        n = len(summary["warnings"])
        print(
            f"{n} warning{'s' * (n > 1)} during the run, the last at {summary['warnings'][-1]} "
            f"(every one in {rundir.path / 'summary.json'})",
            file=sys.stderr,
        )
