"""The training config: one dataclass, named presets as overrides (flags: pixelda/flags.py).

Defaults are the official PixelDA values (tensorflow/models, research/domain_adaptation/
pixel_domain_adaptation: hparams.py and the README's MNIST-M flags); `--preset fast` overrides the
ones that make a 2-core CPU reach good accuracy soonest; METHOD_DEFAULTS holds the conditional
GAN's own defaults.
"""

import dataclasses
from dataclasses import dataclass, field

from . import sanity
from .errors import UserError
from .loggers import logger_names
from .recipes import METHOD_DEFAULTS, METHOD_PRESETS, PRESETS

METHODS = ("pixelda", "source-only", "target-only", "dann", "cgan")
DEVICES = ("auto", "cpu", "cuda", "mps")
TASKS = ("classification", "regression")
ON_NAN = ("stop", "skip")
RESIZE_MODES = ("stretch", "crop", "pad")
STREAM_MODES = ("auto", "on", "off")
AMP = ("auto", "none", "bf16")
LR_SCHEDULES = ("step", "linear", "annealed")
OPTIMIZERS = ("adam", "sgd")
# --consistency-judge: whose predictions semantic consistency compares (pixelda/methods/pixelda.py)
CONSISTENCY_JUDGES = ("source", "recoloured", "task")
BACKBONES = ("tower", "resnet18", "resnet34", "resnet50")  # pixelda/backbones.py
# Label-free validators (pixelda/validators.py, which says which way each points): regression
# runs log dev and kid only, and kid and label_keeping need PixelDA's generator.
VALIDATORS = ("im_kept", "im", "entropy", "snd", "dev", "kid", "label_keeping")
REGRESSION_VALIDATORS = ("dev", "kid")
GENERATOR_VALIDATORS = ("kid", "label_keeping")


def option(default, help: str, **meta):
    """A dataclass field whose help text and choices become its command-line flag's."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    # What to train
    method: str = option("pixelda", "what to train", choices=METHODS)
    preset: str = option(
        "fast", "named set of defaults: fast (2-core CPU) or paper (official code)"
    )
    task: str = option(
        "classification",
        "classification (class labels, cross-entropy) or regression (K numbers per image from a "
        "csv: manifest, MSE loss, RMSE reported)",
        choices=TASKS,
    )
    backbone: str = option(
        "tower", "task network: DANN's tower or a ResNet (docs/methods.md)", choices=BACKBONES
    )
    pretrained: bool = option(False, "a ResNet starts from torchvision's ImageNet weights")
    # Data
    source: str = option("mnist", "labeled source data: mnist, mnistm, usps or folder:PATH")
    target: str = option("mnistm", "unlabeled target data: mnistm, mnist, usps or folder:PATH")
    target_test: str = option(
        "",
        "labeled target test data, for reporting only (default: the target's own test split, "
        "when it has one)",
    )
    val_size: int = option(
        1000,
        "labeled target images held out of the target's training split for validation: every "
        "evaluation scores them, best.pt keeps the best (official PixelDA code: 1,000)",
    )
    data_root: str = option("", "folder with mnist/, bsds500/, usps/ ... (default: embedded data)")
    photos: str = option("", "photo folder for MNIST-M (default: DATA_ROOT/bsds500/images/train)")
    download: bool = option(False, "let torchvision download MNIST/USPS into --data-root")
    cache_dir: str = option("", "where built datasets are cached (default: ~/.cache/pixelda)")
    image_size: int = option(32, "square image size (multiple of 4; 16..128, ResNets 32..224)")
    resize_mode: str = option(
        "stretch",
        "folders and CSVs: stretch to the square, crop (shorter side to size, centre crop) or pad "
        "(longer side to size, black borders)",
        choices=RESIZE_MODES,
    )
    mask_from_background: str = option(
        "",
        "R,G,B: source foreground masks from a plain background colour (e.g. 0,0,0 for renders "
        "on black; default: alpha channels and CSV mask columns only)",
    )
    mask_tolerance: int = option(10, "--mask-from-background: per-channel tolerance (0..255)")
    skip_bad_files: bool = option(
        False, "skip unreadable images and bad CSV rows with one warning, instead of an error"
    )
    stream: str = option(
        "auto",
        "folders and CSVs: decode once into a cache under --cache-dir and read batches from disk "
        "(on), keep them in memory (off), or stream when a split would take over half the "
        "available memory (auto)",
        choices=STREAM_MODES,
    )
    channels: int = option(
        0, "1 (grayscale) or 3 (colour) for every image of the run (0: the target's own kind)"
    )
    # Run
    steps: int = option(250_000, "training iterations (one D-step and one G-step each)")
    max_minutes: float = option(
        0.0, "wall-clock budget: stop cleanly after M minutes (0: no limit)"
    )
    batch_size: int = option(
        32,
        "source and target images per step and per process (Bousmalis et al. 2017); "
        "under torchrun each step sees N times as many",
    )
    seed: int = option(0, "random seed: data order, noise, initialisation")
    device: str = option("auto", "auto picks cuda, then mps, then cpu", choices=DEVICES)
    sync_bn: bool = option(
        False, "under torchrun on CUDA: BatchNorm statistics over all ranks' batches"
    )
    eval_every: int = option(
        1000, "evaluate on held-out test splits every N steps (and at the end)"
    )
    sample_every: int = option(1000, "write a sample grid every N steps (and at the end)")
    log_every: int = option(50, "append losses to metrics.jsonl every N steps")
    checkpoint_every: int = option(1000, "write ckpt.pt every N steps (and at the end)")
    out: str = option(
        "",
        "run directory (default: a fresh runs/METHOD, or runs/METHOD-2, -3, ... when that one is "
        "taken)",
    )
    resume: bool = option(False, "continue the run in --out from its ckpt.pt")
    overwrite: bool = option(False, "delete a non-empty --out and start afresh")
    progress: bool = option(True, "show a progress bar")
    logger: str = option(
        "",
        "experiment trackers beside metrics.jsonl and metrics.csv (always written), "
        "comma-separated: tensorboard, wandb (default: none)",
    )
    threads: int = option(0, "CPU threads for torch (0: torch's default)")
    on_nan: str = option(
        "stop",
        "a NaN or Inf loss: stop (keep the last good checkpoint) or skip (undo the step, go on)",
        choices=ON_NAN,
    )
    # Speed: on by default only where measured faster (README, Performance; pixelda/speed.py)
    channels_last: bool = option(
        True,
        "models and batches in torch.channels_last memory format (faster on our CPU, in float32 "
        "and more so in bf16: README, Speed flags)",
    )
    fused_adam: bool = option(False, "Adam's fused kernel (torch.optim.Adam(fused=True))")
    compile: bool = option(
        False,
        "torch.compile the models in place (about a minute of compiling first; the CPU needs a "
        "C++ compiler; slower on our CPU)",
    )
    amp: str = option(
        "auto",
        "mixed precision: bf16 runs the training forward passes under bfloat16 autocast (losses, "
        "backward and weights stay float32); faster only on hardware with native bfloat16 "
        "(CPUs with AMX or AVX-512 BF16, recent GPUs), much slower on other CPUs; auto: bf16 "
        "where the hardware has it natively, none elsewhere",
        choices=AMP,
    )
    validation_images: int = option(
        1000,
        "label-free validators: how many unlabeled target, held-out source and source training "
        "images each sees (a fixed draw, the same for every run, so runs compare); 0: none",
    )
    select_by: str = option(
        "im_kept",
        "label-free validator that picks the run's best checkpoint (needs no target labels; "
        "regression runs: dev unless given)",
        choices=VALIDATORS,
    )
    # Models (Bousmalis et al. 2017, Fig. 2; official hparams.py)
    latent_dim: int = option(10, "noise dimensions z ~ U(-1, 1) (official noise_dims=10)")
    g_width: int = option(64, "generator filters (official resnet_filters=64)")
    g_blocks: int = option(6, "generator residual blocks (official resnet_blocks=6)")
    d_width: int = option(64, "discriminator filters in its first layer (official: 64)")
    d_dropout: float = option(0.1, "discriminator dropout probability (official keep_prob=0.9)")
    d_noise: float = option(
        0.2, "std of Gaussian noise after each discriminator layer (official 0.2)"
    )
    # Optimisation (official hparams.py: Adam, lr 0.001, beta1 0.5, batch 32, clip 5.0)
    optimizer: str = option(
        "adam", "adam, or sgd with --momentum (not for pixelda or cgan)", choices=OPTIMIZERS
    )
    momentum: float = option(0.9, "--optimizer sgd: momentum (Ganin & Lempitsky 2015: 0.9)")
    lr: float = option(1e-3, "learning rate (official learning_rate=0.001)")
    beta1: float = option(0.5, "Adam beta1 (official adam_beta1=0.5, from DCGAN)")
    lr_schedule: str = option(
        "step",
        "step: lr x --lr-decay every --lr-decay-steps iterations (official code); linear: from "
        "--lr down to 0 over the run's budget, its --steps or, when it ends the run sooner, its "
        "--max-minutes; annealed: lr / (1 + 10 p)^0.75 over that budget's progress p (Ganin & "
        "Lempitsky 2015)",
        choices=LR_SCHEDULES,
    )
    lr_decay: float = option(0.95, "--lr-schedule step: factor (official 0.95)")
    # The official code decays every 20,000 global steps, and its global step advances on both
    # the D and the G update, so that is every 10,000 of our iterations.
    lr_decay_steps: int = option(10_000, "--lr-schedule step: iterations between decays")
    lr_cycle_minutes: float = option(
        0.0,
        "--lr-schedule linear: when --max-minutes is longer, the decay restarts in equal cycles "
        "no longer than this, each ending at 0 (0: one decay over the whole budget)",
    )
    lr_cycle_decay: float = option(
        0.5, "--lr-cycle-minutes: each cycle starts at this fraction of the previous one's lr"
    )
    lr_hold: float = option(
        0.0,
        "--lr-schedule linear: keep --lr for this share of the budget (or of each cycle), then "
        "decay linearly to 0 over the rest (0: decay from the start)",
    )
    clip_grad_norm: float = option(5.0, "clip each update's global gradient norm (official 5.0)")
    # Loss weights: official README, MNIST-M flags
    domain_weight: float = option(0.135603587834, "weight of the discriminator's loss (D-step)")
    style_weight: float = option(0.0113173311334, "weight of the generator's GAN loss (G-step)")
    task_in_g_weight: float = option(0.0100959947002, "weight of the task loss in the G-step")
    content_weight: float = option(0.0, "weight of the masked PMSE content loss (0 for MNIST-M)")
    # Beyond the paper (docs/methods.md, Semantic consistency)
    consistency_weight: float = option(
        0.0,
        "weight of semantic consistency in the G-step (Hoffman et al. 2018, CyCADA): the judge's "
        "class for G(x, z) must be its class for x; 0: off, as in the paper",
    )
    consistency_judge: str = option(
        "recoloured",
        "semantic consistency's judge: source, a second task network trained on source images "
        "only (never on adapted ones, so G cannot teach it a changed digit); recoloured, the same "
        "trained on source images in random foreground and background colours, so it judges "
        "shape rather than style; or task, T itself",
        choices=CONSISTENCY_JUDGES,
    )
    consistency_changed_factor: float = option(
        1.0,
        "semantic consistency: an adapted image that the judge reads as another class counts "
        "this many times in the loss (1: every image alike, as in CyCADA)",
    )
    consistency_changed_confidence: float = option(
        0.0, "--consistency-changed-factor: only where the judge's probability of it exceeds this"
    )
    adapted_zoom: float = option(
        1.0,
        "T in the D-step sees each adapted image zoomed in about its centre by a random factor "
        "in [1, ADAPTED_ZOOM] (data augmentation of adapted images); 1: off, as in the paper",
    )
    adapted_zoom_share: float = option(
        1.0,
        "--adapted-zoom: the share of each batch's adapted images that T sees zoomed (the "
        "others at their own size)",
    )
    target_weight: float = option(
        0.0,
        "weight of self-training in the D-step: T learns unlabeled target images (randomly "
        "shifted and scaled) with the labels that a moving average of T (the teacher; Tarvainen "
        "& Valpola 2017, French et al. 2018) gives them, where it is confident; the teacher then "
        "answers for the run; 0: off, as in the paper; off for --task regression",
    )
    target_threshold: float = option(
        0.9, "self-training: the teacher's lowest probability that still makes a pseudo-label"
    )
    target_balance: float = option(
        0.0,
        "self-training: weight of a class-balance term on T's mean prediction over the batch's "
        "target images (0: off)",
    )
    target_balance_floor: float = option(
        1.0,
        "self-training: the class balance penalizes each class whose mean predicted share over "
        "the batch falls below this fraction of the even share 1/K (1: pushes towards an even "
        "spread; 0.5: a class may fall to half its even share unpenalized)",
    )
    target_balance_decay: float = option(
        0.0,
        "self-training: the class balance compares a running mean of T's predicted shares (this "
        "decay per step) with the floor, instead of the one batch's mean (0: the batch's)",
    )
    teacher_decay: float = option(
        0.99, "self-training: decay of the teacher's moving average of T's weights, per step"
    )
    target_recolour: bool = option(
        False,
        "self-training: the student sees each colour target image with its channels in a "
        "random order and, for half of the images, negated (the teacher sees them as they are), "
        "so that T learns the target's shapes rather than its colours; one-channel images stay",
    )
    target_class_thresholds: bool = option(
        False,
        "self-training: a class the teacher labels confidently less often than its most often "
        "labeled class gets a lower confidence threshold, down to 0.5 (FlexMatch)",
    )
    # Baselines
    dann_weight: float = option(
        1.0, "DANN: gradient reversal coefficient times the lambda schedule"
    )
    # Conditional GAN (Mirza & Osindero 2014)
    embed_dim: int = option(10, "cgan: size of the generator's learned label embedding")
    ema_decay: float = option(
        0.0,
        "cgan: decay of the generator's weight average used for samples "
        "(0: off; Yazici et al. 2019)",
    )


def resolve(overrides: dict) -> TrainConfig:
    """Defaults, then the preset's overrides, then the method's, then the user's.

    Unknown names are a UserError."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise UserError(f"unknown config option(s): {', '.join(unknown)}")
    preset = overrides.get("preset", TrainConfig.preset)
    if preset not in PRESETS:
        raise UserError(f"--preset: unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    method = overrides.get("method", TrainConfig.method)
    defaults = {**METHOD_DEFAULTS.get(method, {}), **METHOD_PRESETS.get((method, preset), {})}
    cfg = TrainConfig(**{**PRESETS[preset], **defaults, **overrides})
    if cfg.task == "regression" and "select_by" not in overrides:
        cfg.select_by = "dev"  # entropy, im and snd need class probabilities
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    if cfg.method not in METHODS:
        raise UserError(f"--method: unknown method {cfg.method!r}; expected one of {METHODS}")
    for name, choices in (
        ("task", TASKS),
        ("on_nan", ON_NAN),
        ("lr_schedule", LR_SCHEDULES),
        ("amp", AMP),
        ("resize_mode", RESIZE_MODES),
        ("stream", STREAM_MODES),
        ("device", DEVICES),
        ("consistency_judge", CONSISTENCY_JUDGES),
    ):
        if getattr(cfg, name) not in choices:
            flag, value = "--" + name.replace("_", "-"), getattr(cfg, name)
            raise UserError(f"{flag}: expected one of {choices}, got {value!r}")
    if cfg.task == "regression" and cfg.method == "cgan":
        raise UserError("--task regression: the cgan is conditioned on classes")
    _validate_choices(cfg)
    low, high = (16, 128) if cfg.backbone == "tower" else (32, 224)
    if not (low <= cfg.image_size <= high and cfg.image_size % 4 == 0):
        raise UserError(
            f"--image-size: expected {low}..{high} and a multiple of 4 with --backbone "
            f"{cfg.backbone}, got {cfg.image_size}"
        )
    for name in (
        "steps",
        "batch_size",
        "eval_every",
        "sample_every",
        "log_every",
        "checkpoint_every",
        "lr_decay_steps",
        "g_width",
        "d_width",
        "embed_dim",
        "val_size",
    ):
        if getattr(cfg, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}: expected a positive integer")
    sanity.check_numbers(cfg)
    sanity.check_beyond_paper(cfg)
    _validate_select_by(cfg)
    logger_names(cfg.logger)  # a UserError names an unknown tracker
    sanity.check(cfg)  # signs, the background colour, and what a step needs in memory
    if cfg.resume and cfg.overwrite:
        raise UserError("--resume and --overwrite exclude each other")


def _validate_select_by(cfg: TrainConfig) -> None:
    if cfg.validation_images != 0 and cfg.validation_images < 10:
        value = cfg.validation_images
        raise UserError(f"--validation-images: expected 0 (no validators) or >= 10, got {value}")
    if cfg.select_by not in VALIDATORS:
        raise UserError(f"--select-by: expected one of {VALIDATORS}, got {cfg.select_by!r}")
    if cfg.task == "regression" and cfg.select_by not in REGRESSION_VALIDATORS:
        raise UserError(
            f"--select-by {cfg.select_by}: needs class labels; regression runs log "
            f"{' and '.join(REGRESSION_VALIDATORS)}"
        )
    if cfg.select_by in GENERATOR_VALIDATORS and cfg.method != "pixelda":
        raise UserError(
            f"--select-by {cfg.select_by}: needs PixelDA's generator (--method pixelda)"
        )


def _validate_choices(cfg: TrainConfig) -> None:
    """--backbone, --pretrained and --optimizer: known values, and methods that use them."""
    if cfg.backbone not in BACKBONES or cfg.optimizer not in OPTIMIZERS:
        raise UserError(f"--backbone, --optimizer: expected one of {BACKBONES}, {OPTIMIZERS}")
    if cfg.method == "cgan" and (cfg.backbone != "tower" or cfg.pretrained):
        raise UserError("--backbone, --pretrained: the cgan has no task network")
    if cfg.optimizer == "sgd" and cfg.method in ("pixelda", "cgan"):
        raise UserError(f"--optimizer sgd: for source-only, target-only and dann, not {cfg.method}")
    if not 0.0 <= cfg.momentum < 1.0:
        raise UserError(f"--momentum: expected a number in [0, 1), got {cfg.momentum}")
