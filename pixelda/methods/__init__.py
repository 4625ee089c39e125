"""The methods, one module each, and the interface the loop, export and the API rely on.

Every method module provides:
    CLASSIFIER                      the name of its trained task network (None for the cGAN,
                                    which only draws digits); the answer comes from
                                    helpers.predictor: that network, or PixelDA's teacher
    build(cfg, info) -> nn.ModuleDict          its models, from a TrainConfig and a DataInfo
    optimizers(models, cfg) -> dict            name -> torch optimizer (the loop sets each lr)
    train_step(models, opts, batch, cfg, progress) -> dict
                                    one training iteration on a batches.Batch; progress is the
                                    share of the run's budget used, 0..1 (steps or --max-minutes,
                                    whichever ends it first); returns detached loss tensors
    evaluate(models, data) -> dict  held-out metrics on a rundata.RunData, in eval mode
    grid(models, fixed) -> list     image columns for the sample grid (rundata.Fixed)
and, where the method has a generator:
    exporter(models) -> run         run(x_src, y_src, z) -> images in [-1, 1], for export
    adapt(generator, x_src, z)      (PixelDA) source images to the target's style
    generate(models, labels, z)     (cGAN) one image per label

A method uses only this interface and the layers below it (helpers, metrics, validators, losses,
models, data) and methods/common.py (the classifier-only pieces); it never imports the loop,
another method or an entry point.
"""

from dataclasses import asdict, dataclass, replace

from ..checkpoint import load_models
from ..config import TrainConfig
from ..errors import UserError
from . import cgan, dann, pixelda, source_only, target_only

METHODS = {
    "pixelda": pixelda,
    "source-only": source_only,
    "target-only": target_only,
    "dann": dann,
    "cgan": cgan,
}


@dataclass
class DataInfo:
    """What the models need to know about the data; stored in every checkpoint."""

    channels: int
    image_size: int
    num_outputs: int
    classes: list[str] | None

    @property
    def regression(self) -> bool:
        return self.classes is None

    def to_dict(self) -> dict:
        return asdict(self)


def restore(ckpt: dict, *, device="cpu"):
    """Rebuild a checkpoint's models from its own config and data info -> (cfg, info, models).

    The models are in eval mode on `device`."""
    known = {f for f in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**{k: v for k, v in ckpt["config"].items() if k in known})
    info = DataInfo(**ckpt["data_info"])
    if cfg.method not in METHODS:
        raise UserError(f"checkpoint: method {cfg.method!r} is not known to this pixelda")
    # The checkpoint holds the weights: no need for --pretrained's ImageNet ones.
    models = METHODS[cfg.method].build(replace(cfg, pretrained=False), info)
    load_models(models, ckpt["models"])
    return cfg, info, models.to(device).eval()
