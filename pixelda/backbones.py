"""Task networks for --backbone: the DANN MNIST tower (models.TaskClassifier) or a torchvision
ResNet-18/34/50 (He et al. 2016), with `features`, `head`, `feature_dim` and the same forward.

Every backbone takes NCHW images in [-1, 1] with 1 or 3 channels and returns (B, num_outputs)
class logits or regression outputs. --pretrained ResNets start from torchvision's ImageNet weights.
"""

import os
import socket
from pathlib import Path

import torch
import torchvision
from torch import nn

from .errors import UserError
from .models import TaskClassifier

BACKBONES = ("tower", "resnet18", "resnet34", "resnet50")
# torchvision's ImageNet preprocessing (ImageClassification preset): mean and std of RGB in [0, 1]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OFFLINE_ENV = "PIXELDA_OFFLINE"  # set (to anything but "" or "0"): never try to download weights
DOWNLOAD_TIMEOUT_S = 20.0


class ImageNetInput(nn.Module):
    """[-1, 1] images with 1 or 3 channels -> RGB normalised as ImageNet models expect.

    Grey images are repeated to 3 channels, so a pretrained first conv sees what it was trained
    on. Applied with and without --pretrained: the network is the same either way, so a
    checkpoint rebuilds it without needing the ImageNet weights."""

    def __init__(self):
        super().__init__()
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) == 1:
            x = x.expand(-1, 3, -1, -1)
        return ((x + 1) / 2 - self.mean) / self.std


class ResNetClassifier(nn.Module):
    """A torchvision ResNet trunk (`features`: images -> (B, feature_dim) after global average
    pooling) and one linear `head`. The stem keeps its 7x7 conv (so ImageNet weights fit) but
    is adapted to small images, so that the last feature map is at least 4x4:

    - image_size < 64: stride-1 stem conv and no max-pool (32 px -> 4x4 at the end);
    - 64 <= image_size < 128: no max-pool (64 px -> 4x4);
    - image_size >= 128: torchvision's ImageNet network unchanged (224 px -> 7x7).
    """

    def __init__(
        self,
        *,
        arch: str,
        in_channels: int,
        image_size: int,
        num_outputs: int = 10,
        pretrained: bool = False,
    ):
        super().__init__()
        if arch not in BACKBONES[1:]:
            raise ValueError(f"unknown ResNet {arch!r}; expected one of {BACKBONES[1:]}")
        if in_channels not in (1, 3):
            raise ValueError(f"a ResNet backbone takes 1 or 3 channels, got {in_channels}")
        net = getattr(torchvision.models, arch)(weights=None)
        if pretrained:
            net.load_state_dict(imagenet_state_dict(arch))
        if image_size < 64:
            net.conv1.stride = (1, 1)
        if image_size < 128:
            net.maxpool = nn.Identity()
        self.feature_dim = net.fc.in_features  # 512 (18, 34) or 2048 (50)
        net.fc = nn.Identity()
        self.features = nn.Sequential(ImageNetInput(), net)
        self.head = nn.Linear(self.feature_dim, num_outputs)

    def forward(self, x: torch.Tensor, *, with_features: bool = False):
        """x: (B, C, S, S) in [-1, 1] -> (B, num_outputs), and with `with_features` also the
        (B, feature_dim) features."""
        features = self.features(x)
        logits = self.head(features)
        return (logits, features) if with_features else logits


def task_network(
    backbone: str, *, in_channels: int, image_size: int, num_outputs: int, pretrained: bool
) -> nn.Module:
    """The task network for --backbone (a UserError for --pretrained with the tower)."""
    if backbone == "tower":
        if pretrained:
            raise UserError("--pretrained: the tower has no pretrained weights; use a ResNet")
        return TaskClassifier(
            in_channels=in_channels, image_size=image_size, num_outputs=num_outputs
        )
    return ResNetClassifier(
        arch=backbone,
        in_channels=in_channels,
        image_size=image_size,
        num_outputs=num_outputs,
        pretrained=pretrained,
    )


def weights_path(arch: str) -> Path:
    """Where torch hub keeps torchvision's ImageNet weights for `arch` ($TORCH_HOME/hub/...)."""
    url = torchvision.models.get_model_weights(arch).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def imagenet_state_dict(arch: str) -> dict:
    """torchvision's IMAGENET1K_V1 weights for `arch`, from the torch hub cache or, unless
    $PIXELDA_OFFLINE is set, downloaded into it; a one-line UserError when neither works."""
    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    path = weights_path(arch)
    offline = os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    if not path.is_file() and offline:
        raise UserError(
            f"--pretrained: ImageNet weights for {arch} are not in {path.parent} and "
            f"${OFFLINE_ENV} forbids downloading them; put {path.name} there or drop --pretrained"
        )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # no internet must fail, not hang
    try:
        return weights.get_state_dict(progress=False, weights_only=True)
    except Exception as e:  # URLError, timeouts, a truncated file: all mean "not available"
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(
            f"--pretrained: ImageNet weights for {arch} are not in {path.parent} and could not "
            f"be downloaded ({reason}); put {path.name} there or drop --pretrained"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
