"""Train PixelDA or a baseline.

Usage: python -m pixelda.train [--method pixelda] [--data-root ../shared/data] [--steps N] ...
"""

if __name__ == "__main__":  # Ctrl-C while torch loads (seconds): one line and exit 130
    from .errors import exit_130_on_ctrl_c

    exit_130_on_ctrl_c()

import dataclasses
import itertools
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__, checkpoint, distributed, loggers, speed, validators
from .adversarial import LoopState, Run, fit
from .api import TrainModule
from .config import TrainConfig, resolve, train_parser
from .data import (
    DataOptions,
    ImageSet,
    describe,
    load,
    missing_test_reason,
    split_validation,
    to_float,
)
from .data.classes import align
from .errors import UserError, cli
from .locks import hold
from .methods import METHODS, DataInfo
from .ownership import check_out_path
from .plots import save_curves
from .rundir import RunDir

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


@dataclass
class RunData:
    """Every split of a run. target_train is the unlabeled training pool (labeled only for
    target-only); target_val is carved out of the target's training split (--val-size) and
    never trained on; target_test is None where the target has no test split."""

    source_train: ImageSet
    source_test: ImageSet | None
    target_train: ImageSet | None
    target_test: ImageSet | None
    options: DataOptions | None = None  # where evaluation may cache what it builds (cgan judge)
    target_val: ImageSet | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # one line each, for the console


@dataclass
class Fixed:
    """The images and noise every sample grid of a run shows."""

    x_src: torch.Tensor
    y_src: torch.Tensor | None
    z: list[torch.Tensor]
    x_tgt: torch.Tensor | None


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


def data_options(cfg) -> DataOptions:
    return DataOptions.from_config(cfg)


def load_data(cfg: TrainConfig) -> RunData:
    """Every split a run needs, in one shape; target training labels dropped unless target-only."""
    opts = data_options(cfg)
    if cfg.method == "cgan":
        source_train = _load_source(cfg, opts, channels=None)
        source_test = load(cfg.source, "test", opts, channels=source_train.channels)
        return RunData(source_train, source_test, None, None, opts)
    target_train = load(cfg.target, "train", opts)
    source_train = _load_source(cfg, opts, channels=target_train.channels)
    channels = source_train.channels
    source_test = load(cfg.source, "test", opts, channels=channels)
    data = RunData(source_train, source_test, None, None, opts)
    if target_train.labels is not None:
        target_train, data.target_val = split_validation(target_train, cfg.val_size)
    else:
        data.notes.append(f"target {cfg.target} is unlabeled: no validation split")
    if cfg.method == "target-only" and target_train.labels is None:
        raise UserError(f"--target: {cfg.target} has no labels; target-only needs them")
    data.target_train = target_train if cfg.method == "target-only" else target_train.unlabeled()
    spec, split = (cfg.target_test, "eval") if cfg.target_test else (cfg.target, "test")
    data.target_test = load(spec, split, opts, channels=channels)
    if data.target_test is None:
        data.notes.append(f"no target test split: {missing_test_reason(spec, opts)}")
    check_classes(data)
    return data


def _load_source(cfg: TrainConfig, opts: DataOptions, *, channels: int | None) -> ImageSet:
    """The labeled source training split; its labels must suit --task."""
    source_train = load(cfg.source, "train", opts, channels=channels)
    if source_train.labels is None:
        raise UserError(
            f"--source: {cfg.source} has no labels (a labeled source needs class sub-folders)"
        )
    regression = source_train.labels.dtype.is_floating_point
    if regression and cfg.task != "regression":
        raise UserError(f"--source: {cfg.source} has numeric targets; pass --task regression")
    if not regression and cfg.task == "regression":
        raise UserError(
            f"--task regression: {cfg.source} has class labels, not numeric "
            f"targets (use a csv:PATH manifest with columns path,y1,y2,...)"
        )
    return source_train


def check_classes(data: RunData) -> None:
    """Number every labeled split by the source's class names, matched by name (a split may
    hold only some of them, in any order); a name the source lacks is a UserError."""
    names = data.source_train.classes
    data.source_test = align(data.source_test, names, "source test data")
    data.target_val = align(data.target_val, names, "target validation data")
    data.target_test = align(data.target_test, names, "target test data")
    data.target_train = align(data.target_train, names, "--target training data")


def fixed_samples(data: RunData, cfg, device) -> Fixed:
    """One source image per class (up to 10), three fixed noise vectors, and target images
    spread evenly over the target set (a set sorted by class still shows several classes)."""
    src = data.source_test if data.source_test is not None else data.source_train
    idx = [
        int((src.labels == c).nonzero()[0])
        for c in range(src.num_classes or 0)
        if (src.labels == c).any()
    ][:10] or list(range(min(10, len(src))))
    splits = (data.target_val, data.target_test, data.target_train)
    tgt = next((t for t in splits if t is not None), None)
    g = torch.Generator().manual_seed(cfg.seed)
    z = [(torch.rand(len(idx), cfg.latent_dim, generator=g) * 2 - 1).to(device) for _ in range(3)]
    x_tgt = None
    if tgt is not None:  # evenly spaced; repeats when the target has fewer images than rows
        spread = torch.linspace(0, len(tgt) - 1, len(idx)).round().long()
        x_tgt = to_float(tgt.subset(spread).images).to(device)
    return Fixed(to_float(src.images[idx]).to(device), src.labels[idx].to(device), z, x_tgt)


def config_from_args(argv: list[str] | None) -> tuple[TrainConfig, dict | None]:
    """The run's config and, with --resume, its checkpoint (whose config wins)."""
    return config_from_overrides(vars(train_parser().parse_args(argv)))


def fresh_out(method: str) -> str:
    """runs/METHOD, or the first of runs/METHOD-2, -3, ... that is missing or empty."""
    candidates = (
        Path("runs") / (method if n == 1 else f"{method}-{n}") for n in itertools.count(1)
    )
    return str(next(p for p in candidates if not p.exists() or not any(p.iterdir())))


def config_from_overrides(overrides: dict) -> tuple[TrainConfig, dict | None]:
    """As config_from_args, from TrainConfig field names -> values (what the flags set)."""
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
    stored = {k: v for k, v in ckpt["config"].items() if k in TrainConfig.__dataclass_fields__}
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
    opts = data_options(cfg)
    rank, world = distributed.rank(), distributed.world_size()
    if distributed.is_main():
        print(
            f"pixelda {cfg.method}: source {describe(cfg.source, opts)}"
            + ("" if cfg.method == "cgan" else f" -> target {describe(cfg.target, opts)}")
            + f"; device {device}"
            + (" (bf16 autocast)" if speed.amp_mode(cfg, device) == "bf16" else "")
            + (f"; {world} processes" if world > 1 else ""),
            file=sys.stderr,
            flush=True,
        )
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
    from .batches import Batches

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
    state = LoopState()
    if world > 1:  # each rank its own noise, dropout and D input noise
        torch.manual_seed(cfg.seed + 1_000_003 * rank)
    if ckpt is not None:
        checkpoint.load_models(models, ckpt["models"])
        for name, opt in optimizers.items():
            speed.load_optimizer(opt, ckpt["optimizers"][name])
        batches.load_state_dict(ckpt["batches"])
        restore_rng(ckpt, cfg)
        state = LoopState(
            step=ckpt["step"],
            wall_s=ckpt["wall_s"],
            train_s=ckpt["train_s"],
            skipped_steps=ckpt.get("skipped_steps", 0),
            best=dict(ckpt.get("best") or {}),
        )
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
    if distributed.is_main():
        counts = ", ".join(
            f"{len(split)} {name}"
            for name, split in (
                ("source train", src),
                ("target train", data.target_train),
                ("target validation", data.target_val),
                ("target test", data.target_test),
            )
            if split is not None
        )
        shape = f"{info.channels}x{info.image_size}x{info.image_size}"
        print(f"data: {counts} images of {shape}", file=sys.stderr, flush=True)
        for note in data.notes:
            print(f"note: {note}", file=sys.stderr, flush=True)
    return run, state


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
        "hardware": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads",
        "source": cfg.source,
        "target": None if cfg.method == "cgan" else cfg.target,
        "data_root": cfg.data_root or "embedded",
        "pixelda_version": __version__,
        "torch_version": torch.__version__,
        "skipped_steps": state.skipped_steps,
        "finished": not state.interrupted,
        "out_of_time": state.out_of_time,
    }


@cli
def main(argv: list[str] | None = None) -> dict:
    try:
        return train_config(*config_from_args(argv))
    finally:
        distributed.shutdown()


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


# `pixelda.train(**overrides)` calls this module (pixelda/api.py); `train.main` stays as it is.
sys.modules[__name__].__class__ = TrainModule

if __name__ == "__main__":
    # Ctrl-C saves a checkpoint and exits 130 (128 + SIGINT, as shells report it), so a script
    # can tell a stopped run from a finished one; --max-minutes is a finished run (exit 0).
    raise SystemExit(0 if main()["finished"] else 130)
