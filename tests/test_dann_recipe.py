"""DANN's recipes: the paper preset (Ganin & Lempitsky 2015), the annealed learning rate, the
clock-aware progress behind lr and lambda, SGD in the shared loop, and DANN on a ResNet."""

import json
from types import SimpleNamespace

import pytest
import torch

from pixelda import adversarial, checkpoint, cli
from pixelda.schedules import learning_rate
from pixelda.batches import Batch
from pixelda.config import resolve
from pixelda.errors import UserError
from pixelda.grl import dann_lambda
from pixelda.methods import DataInfo, dann

from .conftest import TINY


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.0, 0.01),
        (0.1, 0.01 / 2**0.75),  # 0.0059460...
        (0.5, 0.01 / 6**0.75),  # 0.0026085...
        (1.0, 0.01 / 11**0.75),  # 0.0016556...
    ],
)
def test_annealed_learning_rate_by_hand(p, expected):
    cfg = SimpleNamespace(lr=0.01, lr_schedule="annealed", lr_decay=0.5, lr_decay_steps=1)
    assert learning_rate(cfg, 123, p) == pytest.approx(expected, rel=1e-12)


def test_annealed_learning_rate_hand_values():
    cfg = SimpleNamespace(lr=0.01, lr_schedule="annealed")
    assert learning_rate(cfg, 0, 0.1) == pytest.approx(0.005946035575013606, rel=1e-12)
    assert learning_rate(cfg, 0, 1.0) == pytest.approx(0.0016556002607617019, rel=1e-12)


def test_paper_preset_is_the_published_recipe():
    cfg = resolve({"method": "dann", "preset": "paper"})
    assert (cfg.optimizer, cfg.momentum, cfg.lr, cfg.lr_schedule) == ("sgd", 0.9, 0.01, "annealed")
    assert (cfg.batch_size, cfg.image_size, cfg.backbone, cfg.dann_weight) == (64, 28, "tower", 1)
    assert cfg.clip_grad_norm == 0.0
    # the user's flags still win; other methods keep their own paper preset
    assert resolve({"method": "dann", "preset": "paper", "lr": 0.02}).lr == 0.02
    assert resolve({"method": "source-only", "preset": "paper"}).optimizer == "adam"


def test_fast_preset_gives_dann_its_own_step_budget_only():
    cfg = resolve({"method": "dann"})
    assert (cfg.preset, cfg.steps, cfg.eval_every) == ("fast", 4000, 1000)
    assert (cfg.optimizer, cfg.lr, cfg.lr_schedule, cfg.batch_size) == ("adam", 2e-3, "linear", 32)
    assert resolve({"method": "pixelda"}).steps == 1200  # PixelDA's fast preset is untouched


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"image_size": 224}, "16..128"),
        ({"backbone": "resnet18", "image_size": 16}, "32..224"),
        ({"method": "pixelda", "optimizer": "sgd"}, "not pixelda"),
        ({"method": "cgan", "backbone": "resnet18"}, "no task network"),
        ({"optimizer": "sgd", "momentum": 1.0}, "--momentum"),
    ],
)
def test_config_rejects(overrides, message):
    with pytest.raises(UserError, match=message):
        resolve({"method": "dann", **overrides})


def test_resnet_images_up_to_224():
    assert resolve({"method": "dann", "backbone": "resnet50", "image_size": 224}).image_size == 224


def test_lr_and_lambda_follow_the_loops_clock_aware_progress(tmp_path, monkeypatch):
    """The loop hands run_progress (steps or --max-minutes, whichever ends the run first) to
    both the learning rate and the step; here a stand-in clock says 30% more than the steps."""
    real, seen = adversarial.run_progress, []

    def ahead(cfg, step, wall_s):
        seen.append(min(1.0, real(cfg, step, wall_s) + 0.3))
        return seen[-1]

    monkeypatch.setattr(adversarial, "run_progress", ahead)
    out = tmp_path / "run"
    cli.train_main([*TINY, "--method", "dann", "--preset", "paper", "--out", str(out)])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["lambda"] for r in steps] == pytest.approx([dann_lambda(p) for p in seen])
    assert [r["lr"] for r in steps] == pytest.approx([0.01 / (1 + 10 * p) ** 0.75 for p in seen])


def test_tiny_paper_run_end_to_end_with_sgd(tmp_path):
    out = tmp_path / "run"
    summary = cli.train_main([*TINY, "--method", "dann", "--preset", "paper", "--out", str(out)])
    assert summary["finished"] and summary["preset"] == "paper"
    assert 0.0 <= summary["metrics"]["domain_acc"] <= 1.0
    stored = json.loads((out / "config.json").read_text())
    assert (stored["optimizer"], stored["lr_schedule"]) == ("sgd", "annealed")
    state = checkpoint.load(out / "ckpt.pt")["optimizers"]["dann"]
    assert state["param_groups"][0]["momentum"] == 0.9
    assert all("momentum_buffer" in s for s in state["state"].values())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["kind"] == "train"]
    assert lrs == pytest.approx([0.01 / (1 + 10 * i / 4) ** 0.75 for i in range(4)])


def test_dann_step_on_a_resnet_backbone():
    torch.manual_seed(0)
    cfg = SimpleNamespace(
        backbone="resnet18",
        pretrained=False,
        dann_weight=1.0,
        clip_grad_norm=0.0,
        optimizer="sgd",
        momentum=0.9,
        lr=0.01,
    )
    m = dann.build(cfg, DataInfo(channels=1, image_size=32, num_outputs=10, classes=None))
    assert m["domain_classifier"].net[0].in_features == 512
    assert [type(x).__name__ for x in m["domain_classifier"].net].count("Linear") == 3
    g = torch.Generator().manual_seed(1)
    batch = Batch(
        x_src=torch.rand(2, 1, 32, 32, generator=g) * 2 - 1,
        y_src=torch.tensor([3, 7]),
        mask_src=None,
        x_tgt=torch.rand(2, 1, 32, 32, generator=g) * 2 - 1,
    )
    before = m["classifier"].features[1].conv1.weight.detach().clone()
    out = dann.train_step(m, dann.optimizers(m, cfg), batch, cfg, progress=0.5)
    assert all(torch.isfinite(v) for v in out.values())
    assert not torch.equal(before, m["classifier"].features[1].conv1.weight)
