"""One module per method, each with the same few functions the shared loop calls:

build(cfg, info) -> nn.ModuleDict, optimizers(models, cfg) -> dict, train_step(models, opts,
batch, cfg, progress) -> dict of loss tensors, evaluate(models, data) -> dict of held-out
metrics, grid(models, fixed) -> list of image columns, and CLASSIFIER, the name of the model
whose predictions are the method's answer.
"""

from dataclasses import asdict, dataclass, replace

from . import cgan, classifier, dann, pixelda

METHODS = {
    "pixelda": pixelda,
    "source-only": classifier,
    "target-only": classifier,
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
    from ..checkpoint import load_models
    from ..config import TrainConfig
    from ..errors import UserError

    known = {f for f in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**{k: v for k, v in ckpt["config"].items() if k in known})
    info = DataInfo(**ckpt["data_info"])
    if cfg.method not in METHODS:
        raise UserError(f"checkpoint: method {cfg.method!r} is not known to this pixelda")
    # The checkpoint holds the weights: no need for --pretrained's ImageNet ones.
    models = METHODS[cfg.method].build(replace(cfg, pretrained=False), info)
    load_models(models, ckpt["models"])
    return cfg, info, models.to(device).eval()
