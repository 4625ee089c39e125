"""--backbone: output shapes of every task network, the small-image stem, --pretrained."""

import dataclasses

import pytest
import torch
import torchvision

from pixelda import backbones, cli
from pixelda.backbones import BACKBONES, ResNetClassifier, task_network, weights_path
from pixelda.config import BACKBONES as CONFIG_BACKBONES
from pixelda.config import resolve
from pixelda.errors import UserError
from pixelda.methods import DataInfo, dann, restore

from .conftest import TINY


def _net(backbone: str, size: int, outputs: int, channels: int = 3):
    torch.manual_seed(0)
    net = task_network(
        backbone, in_channels=channels, image_size=size, num_outputs=outputs, pretrained=False
    )
    return net.eval()


@pytest.mark.parametrize("size", [32, 64, 224])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_classification_output_and_feature_shapes(backbone, size):
    x = torch.rand(2 if size < 224 else 1, 3, size, size) * 2 - 1
    net = _net(backbone, size, 10)
    with torch.no_grad():
        logits, feats = net(x, with_features=True)
    assert logits.shape == (len(x), 10) and feats.shape == (len(x), net.feature_dim)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_regression_head(backbone):
    """--task regression: K numbers per image from the same network (here K = 3)."""
    with torch.no_grad():
        outputs = _net(backbone, 32, 3)(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert outputs.shape == (2, 3) and outputs.dtype == torch.float32


@pytest.mark.parametrize("size, last_map", [(32, 4), (64, 4), (128, 4), (224, 7)])
def test_resnet_stem_adapted_to_small_images(size, last_map):
    net = ResNetClassifier(arch="resnet18", in_channels=3, image_size=size)
    trunk = net.features[1]
    assert (trunk.conv1.stride == (1, 1)) == (size < 64)
    assert isinstance(trunk.maxpool, torch.nn.Identity) == (size < 128)
    seen = []
    trunk.layer4.register_forward_hook(lambda m, i, out: seen.append(out.shape[-2:]))
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, size, size))
    assert tuple(seen[0]) == (last_map, last_map)


def test_grey_images_are_repeated_to_rgb():
    net = _net("resnet18", 32, 10, channels=1)
    grey = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(grey), net(grey.expand(-1, 3, -1, -1)))
    assert net.features[1].conv1.weight.shape[1] == 3  # the ImageNet conv, unchanged


def test_backbone_names_agree_with_the_config():
    assert CONFIG_BACKBONES == BACKBONES


def test_pretrained_without_cached_weights_offline_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(backbones.OFFLINE_ENV, "1")
    with pytest.raises(UserError, match="not in .* and .PIXELDA_OFFLINE forbids") as e:
        ResNetClassifier(arch="resnet18", in_channels=3, image_size=32, pretrained=True)
    assert "\n" not in str(e.value)


def test_pretrained_cli_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(backbones.OFFLINE_ENV, "1")
    args = [*TINY, "--image-size", "32", "--method", "source-only", "--out", str(tmp_path / "r")]
    with pytest.raises(SystemExit) as e:
        cli.train_main([*args, "--backbone", "resnet18", "--pretrained"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --pretrained: ImageNet weights for resnet18 are not in")
    assert not (tmp_path / "r" / "ckpt.pt").exists()


def test_pretrained_loads_cached_weights_without_network(tmp_path, monkeypatch):
    """A file in the torch hub cache is what --pretrained loads (here a stand-in state dict)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(backbones.OFFLINE_ENV, "1")
    torch.manual_seed(1)
    stand_in = torchvision.models.resnet18(weights=None).state_dict()
    path = weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(stand_in, path)
    net = ResNetClassifier(arch="resnet18", in_channels=1, image_size=32, pretrained=True)
    trunk = net.features[1]
    assert torch.equal(trunk.conv1.weight, stand_in["conv1.weight"])
    assert torch.equal(trunk.layer4[1].bn2.running_var, stand_in["layer4.1.bn2.running_var"])


def test_pretrained_tower_is_a_user_error():
    with pytest.raises(UserError, match="tower has no pretrained"):
        task_network("tower", in_channels=3, image_size=32, num_outputs=10, pretrained=True)


def test_a_pretrained_runs_checkpoint_rebuilds_without_the_imagenet_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # empty: no weights to load
    monkeypatch.setenv(backbones.OFFLINE_ENV, "1")
    cfg = resolve({"method": "dann", "backbone": "resnet18", "pretrained": True})
    info = DataInfo(channels=1, image_size=32, num_outputs=10, classes=None)
    torch.manual_seed(0)
    trained = dann.build(dataclasses.replace(cfg, pretrained=False), info)
    ckpt = {
        "config": dataclasses.asdict(cfg),
        "data_info": info.to_dict(),
        "models": {name: m.state_dict() for name, m in trained.items()},
    }
    restored_cfg, _, models = restore(ckpt)
    assert restored_cfg.pretrained  # the run's own config, as it was
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(models["classifier"](x), trained["classifier"].eval()(x))
