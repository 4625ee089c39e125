"""The adapted-dataset writer behind tools/export_adapted.py and pixelda.export: every source image
through a trained generator, written all or nothing with a manifest and a preview."""

import contextlib
import datetime
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import __version__, checkpoint, distributed
from .config import option
from .data import DataOptions, ImageSet, load, to_float, to_uint8
from .errors import UserError
from .fileio import sha256_file
from .helpers import uniform_noise, zoom_in
from .locks import hold
from .methods import METHODS, DataInfo, restore
from .ownership import check_out_path, check_replaceable
from .plots import grid_image
from .rundir import RunDir
from .runtime import pick_device
from .sanity import check_export_memory
from .writers import ImageFolderWriter, NpzWriter, staged_directory

FORMATS = ("imagefolder", "npz")
PREVIEW_PER_CLASS = 2
PREVIEW_VARIANTS = 8


@dataclass
class ExportConfig:
    checkpoint: str = option(
        "",
        "a trained run's folder (its best.pt, the checkpoint with the best validation score, "
        "else its ckpt.pt) or a checkpoint file, required",
    )
    out: str = option("", "folder to write the adapted dataset into, required")
    source: str = option(
        "",
        "labeled images to adapt: mnist, mnistm, usps or folder:PATH "
        "(empty: the source the run trained on)",
    )
    data_root: str = option("", "folder with mnist/, usps/ ... (empty: the run's --data-root)")
    variants: int = option(1, "adapted images per source image, each with its own noise z")
    format: str = option(
        "imagefolder",
        "imagefolder (OUT/<class>/<index>_<variant>.png) or npz (OUT/adapted.npz)",
        choices=FORMATS,
    )
    seed: int = option(0, "noise seed: same checkpoint, source, seed and batch size, same bytes")
    limit: int = option(0, "export N source images spread evenly over the source (0: all)")
    batch_size: int = option(256, "source images per generator call (part of the noise recipe)")
    zoom: float = option(
        -1.0,
        "zoom adapted images in about their centres by factors from U(1, ZOOM), as T saw them in "
        "training (-1: the run's own zoom, on the run's own share of the images; a factor: on all "
        "of them; 1: no zoom)",
    )
    overwrite: bool = option(False, "replace an existing export in --out once the new one is done")
    device: str = option("cpu", "cpu, cuda, mps or auto", choices=("auto", "cpu", "cuda", "mps"))
    progress: bool = option(True, "show a progress bar")


# ---- validation: everything is checked before any folder is created --------------------------


@dataclass
class Plan:
    cfg: ExportConfig
    out: Path
    ckpt_path: Path
    ckpt: dict
    run: Callable  # the method's exporter(models): (x_src, y_src, z) -> images in [-1, 1]
    source: ImageSet
    indices: torch.Tensor  # (N,) the source images to export, in order
    source_spec: str
    classes: list[str]
    device: torch.device
    run_cfg: object  # the trained run's TrainConfig
    zoom: float  # adapted images are zoomed in by U(1, zoom); 1: not at all
    zoom_share: float  # ... the share of them that is zoomed (the run's --adapted-zoom-share)


def check_config(cfg: ExportConfig) -> ExportConfig:
    """cfg itself, or a UserError naming the first bad option."""
    for name in ("checkpoint", "out"):
        if not getattr(cfg, name):
            raise UserError(f"--{name} is required")
    if cfg.variants < 1:
        raise UserError(f"--variants: expected a positive integer, got {cfg.variants}")
    if cfg.batch_size < 1:
        raise UserError(f"--batch-size: expected a positive integer, got {cfg.batch_size}")
    if cfg.limit < 0 or cfg.seed < 0:
        raise UserError("--limit and --seed must be >= 0")
    if cfg.zoom != -1 and not 1.0 <= cfg.zoom <= 4.0:
        raise UserError(f"--zoom: expected -1 (the run's) or a factor in [1, 4], got {cfg.zoom}")
    return cfg


def checkpoint_file(spec: str) -> Path:
    """--checkpoint as a file: a run folder gives its best.pt when it has one, else ckpt.pt."""
    path = Path(spec).expanduser()
    if path.is_dir():
        run = RunDir(path)
        path = run.best if run.best.is_file() else run.ckpt
    if not path.is_file():
        raise UserError(f"--checkpoint: no checkpoint at {path} (a run folder or a .pt file)")
    return path


def checkpoint_scores(ckpt_path: Path, ckpt: dict) -> dict:
    """The held-out scores the run logged at the checkpoint's step (target_val_acc, validators,
    ...) from metrics.jsonl beside it; what the checkpoint itself records when that is gone."""
    step = ckpt.get("step")
    for record in RunDir(ckpt_path.parent).read_metrics():
        if record.get("kind") == "eval" and record.get("step") == step:
            return {k: v for k, v in record.items() if k not in ("kind", "step")}
    best = ckpt.get("best") or {}
    return {best["metric"]: best["value"]} if best.get("step") == step else {}


def load_generator(ckpt_path: Path, device: torch.device) -> tuple[dict, Callable, object]:
    """The checkpoint, its method's exporter over its models, the run's config."""
    ckpt = checkpoint.load(ckpt_path)
    name = ckpt.get("config", {}).get("method")
    exporting = sorted(n for n, m in METHODS.items() if hasattr(m, "exporter"))
    if not hasattr(METHODS.get(name), "exporter"):
        raise UserError(
            f"{ckpt_path}: a {name!r} run has no generator to export; "
            f"expected a run of {', '.join(exporting)}"
        )
    run_cfg, _, models = restore(ckpt, device=device)
    return ckpt, METHODS[name].exporter(models), run_cfg


def load_source(cfg: ExportConfig, run_cfg, info: DataInfo) -> tuple[ImageSet, str, list[str]]:
    """The labeled source train split, in the generator's size and channels."""
    spec = cfg.source or run_cfg.source
    opts = DataOptions.of_run(run_cfg, info.image_size, data_root=cfg.data_root)
    data = load(spec, "train", opts, channels=info.channels)
    if data is None or data.labels is None or data.labels.dim() != 1:
        raise UserError(f"--source: {spec} has no class labels to carry over")
    # The run's own source gives its classes; another source brings its own class names.
    classes = data.classes or info.classes
    if classes is None or int(data.labels.max()) >= len(classes):
        raise UserError(f"--source: {spec} has labels without class names")
    return data, spec, list(classes)


def pick_indices(n: int, limit: int) -> torch.Tensor:
    """All of 0..n-1, or `limit` of them evenly spaced: sources are often sorted by class, so
    the first `limit` would show one class only."""
    if not limit or limit >= n:
        return torch.arange(n)
    return torch.arange(limit) * n // limit


def plan_for(cfg: ExportConfig) -> Plan:
    """Everything checked and loaded, nothing written yet."""
    out = check_out_path(cfg.out)
    check_replaceable(out, "export", overwrite=cfg.overwrite)
    device = distributed.init(pick_device(cfg.device))
    ckpt_path = checkpoint_file(cfg.checkpoint)
    ckpt, run, run_cfg = load_generator(ckpt_path, device)
    info = DataInfo(**ckpt["data_info"])
    source, spec, classes = load_source(cfg, run_cfg, info)
    indices = pick_indices(len(source), cfg.limit)
    batch = min(cfg.batch_size, len(indices))
    check_export_memory(variants=cfg.variants, batch=batch, shape=source.images.shape[1:])
    zoom = run_cfg.adapted_zoom if cfg.zoom < 0 else cfg.zoom  # -1: as T saw them
    share = run_cfg.adapted_zoom_share if cfg.zoom < 0 else 1.0
    return Plan(
        cfg, out, ckpt_path, ckpt, run, source, indices, spec, classes, device, run_cfg, zoom, share
    )


# ---- the export loop ---------------------------------------------------------------------------


def batch_noise(seed: int, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
    """z ~ U(-1, 1)^shape from a generator seeded by (seed, batch) alone."""
    state = np.random.SeedSequence([seed, batch]).generate_state(1, np.uint64)[0]
    return uniform_noise(shape, generator=torch.Generator().manual_seed(int(state)))


def zoom_factors(u: torch.Tensor, zoom: float, share: float) -> torch.Tensor:
    """Zoom factors from u ~ U(-1, 1): 1 for the images whose (u + 1) / 2 is below 1 - share
    (1 - share of them), the others from U(1, zoom), as T saw adapted images in training."""
    p = (u + 1) / 2
    if share <= 0:  # --adapted-zoom-share 0: T saw no zoomed image
        return torch.ones_like(p)
    return 1 + ((p - (1 - share)) / share).clamp(min=0) * (zoom - 1)


def adapt_batches(plan: Plan):
    """Yield (images uint8 (B, K, C, S, S), labels (B,), source_index (B,), start) batch by
    batch, start being the batch's first position in plan.indices. Under torchrun each rank
    takes every world_size-th batch; a batch's noise depends on its number alone, so the
    images are the same whichever rank makes them."""
    src, k, bs = plan.source, plan.cfg.variants, plan.cfg.batch_size
    batches = list(enumerate(plan.indices.split(bs)))
    for b, index in batches[distributed.rank() :: distributed.world_size()]:
        x_src, y_src = to_float(src.images[index]), src.labels[index]
        z = batch_noise(plan.cfg.seed, b, (k, len(index), plan.run_cfg.latent_dim))
        # All K variants in one call: row v * B + i is source i with noise z[v, i].
        x_fake = plan.run(
            x_src.repeat(k, 1, 1, 1).to(plan.device),
            y_src.repeat(k).to(plan.device),
            z.flatten(0, 1).to(plan.device),
        )
        if plan.zoom > 1:  # factors seeded by (seed, batch) too: the same bytes on any rank count
            u = batch_noise(plan.cfg.seed + 1_000_003, b, (k * len(index),))
            x_fake = zoom_in(x_fake, zoom_factors(u, plan.zoom, plan.zoom_share))
        images = to_uint8(x_fake).cpu().view(k, len(index), *x_src.shape[1:]).transpose(0, 1)
        yield images, y_src, index, b * bs


def preview_rows(labels: torch.Tensor, indices: torch.Tensor, per_class: int) -> list[int]:
    """The first `per_class` exported source indices of each class, in class order."""
    rows, chosen = [], labels[indices]
    for c in chosen.unique().tolist():
        rows += indices[chosen == c][:per_class].tolist()
    return rows


def write_dataset(plan: Plan, writer) -> tuple[dict, list[torch.Tensor]]:
    """Stream this rank's batches into `writer`; -> (images per class name, preview grid
    columns), both complete on rank 0 only."""
    n, k = len(plan.indices), plan.cfg.variants
    wanted = set(preview_rows(plan.source.labels, plan.indices, PREVIEW_PER_CLASS))
    kept = {}
    bar = tqdm(
        total=n * k,
        unit="img",
        desc="export",
        disable=not plan.cfg.progress or not distributed.is_main(),
        file=sys.stderr,
    )
    with bar:
        for images, _, index, start in adapt_batches(plan):
            writer.write(images, start)
            kept.update({i: images[j].clone() for j, i in enumerate(index.tolist()) if i in wanted})
            # Rank 0 counts for all: the other ranks make batches of the same size alongside.
            bar.update(min(images.shape[0] * k * distributed.world_size(), bar.total - bar.n))
    for part in distributed.gather(kept)[1:]:  # the preview's images made by other ranks
        kept.update(part)
    labels = plan.source.labels[plan.indices]
    counts = torch.bincount(labels, minlength=len(plan.classes)) * k
    rows = sorted(kept, key=lambda i: (int(plan.source.labels[i]), i))
    shown = min(k, PREVIEW_VARIANTS)
    columns = [to_float(plan.source.images[rows])]
    columns += [to_float(torch.stack([kept[i][v] for i in rows])) for v in range(shown)]
    return dict(zip(plan.classes, counts.tolist())), columns


def manifest(plan: Plan, counts: dict) -> dict:
    cfg = plan.cfg
    return {
        "checkpoint": str(plan.ckpt_path),
        "checkpoint_sha256": sha256_file(plan.ckpt_path),
        "checkpoint_step": plan.ckpt.get("step"),
        "checkpoint_kind": "best" if plan.ckpt_path.name == "best.pt" else "last",
        "checkpoint_scores": checkpoint_scores(plan.ckpt_path, plan.ckpt),
        "run_config": plan.ckpt["config"],
        "data_info": plan.ckpt["data_info"],
        "source": plan.source_spec,
        "source_images": len(plan.indices),
        "classes": plan.classes,
        "format": cfg.format,
        "seed": cfg.seed,
        "variants": cfg.variants,
        "batch_size": cfg.batch_size,
        "limit": cfg.limit,
        "zoom": plan.zoom,
        "zoom_share": plan.zoom_share,
        "count": sum(counts.values()),
        "counts_per_class": counts,
        "pixelda_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def make_writer(plan: Plan, root: Path, *, create: bool):
    """The format's writer over every exported source; `create` makes its files (rank 0),
    otherwise it opens those rank 0 made."""
    common = {
        "root": root,
        "labels": plan.source.labels[plan.indices],
        "source_index": plan.indices,
        "variants": plan.cfg.variants,
        "create": create,
    }
    if plan.cfg.format == "npz":
        return NpzWriter(**common, shape=tuple(plan.source.images.shape[1:]))
    return ImageFolderWriter(**common, classes=plan.classes, max_index=len(plan.source) - 1)


def export(plan: Plan) -> dict:
    """Write the dataset, preview.png and manifest.json into plan.out, all or nothing.

    Under torchrun every rank writes its batches into rank 0's staging folder, and rank 0
    writes the rest (labels, preview, manifest) and moves the folder into place."""
    main_rank = distributed.is_main()
    staging = staged_directory(plan.out) if main_rank else contextlib.nullcontext()
    with staging as root:
        if main_rank:
            writer = make_writer(plan, root, create=True)
        root = Path(distributed.broadcast(str(root) if main_rank else None))
        if not main_rank:
            writer = make_writer(plan, root, create=False)
        counts, columns = write_dataset(plan, writer)
        writer.flush()
        distributed.barrier()  # every rank's images are on disk
        meta = None
        if main_rank:
            writer.close()
            # Plain writes: the staging folder as a whole is what appears atomically.
            grid_image(columns).save(root / "preview.png", format="PNG")
            meta = manifest(plan, counts)
            (root / "manifest.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return distributed.broadcast(meta)


def export_config(cfg: ExportConfig) -> dict:
    """Write the export cfg describes and report it on one line -> its manifest.

    Everything the CLI does; a bad input raises UserError before anything is written. The
    destination stays locked (pixelda/locks.py) until the export is in place."""
    # A rank stopped by torchrun (another rank failed) removes its staging folder on the way out.
    with distributed.terminate_raises(), hold(check_out_path(check_config(cfg).out)):
        plan = plan_for(cfg)
        start = time.perf_counter()
        meta = export(plan)
        seconds = time.perf_counter() - start
    if not distributed.is_main():
        return meta
    print(
        f"wrote {meta['count']} adapted images ({len(plan.indices)} sources x "
        f"{plan.cfg.variants} variants, {plan.cfg.format}) to {plan.out} in {seconds:.1f}s "
        f"({meta['count'] / max(seconds, 1e-9):.0f} images/s)"
    )
    return meta
