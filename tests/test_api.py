"""The Python API end to end on tiny data, and the experiment trackers (--logger)."""

import csv
import json
import sys
import types
import typing

import pytest
import torch
from PIL import Image

import pixelda
from pixelda import cli
from pixelda.errors import UserError

from .conftest import TINY

# TINY as keyword overrides: 16x16 images, narrow models, 4 steps.
TINY_OVERRIDES = {
    "image_size": 16,
    "batch_size": 4,
    "g_width": 8,
    "g_blocks": 1,
    "d_width": 8,
    "steps": 4,
    "eval_every": 2,
    "sample_every": 2,
    "checkpoint_every": 2,
    "log_every": 1,
    "val_size": 100,
    "progress": False,
    "validation_images": 64,
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny PixelDA run through the API, shared by the tests that only read it."""
    return pixelda.train(**TINY_OVERRIDES, out=tmp_path_factory.mktemp("api") / "run")


def test_train_returns_the_run(tiny_run):
    assert tiny_run.summary["steps"] == 4 and tiny_run.summary["method"] == "pixelda"
    assert tiny_run.summary == json.loads((tiny_run.path / "summary.json").read_text())
    assert tiny_run.checkpoint == tiny_run.path / "ckpt.pt" and tiny_run.checkpoint.is_file()
    kinds = [r["kind"] for r in tiny_run.metrics]
    assert kinds.count("train") == 4 and kinds.count("eval") == 2
    with open(tiny_run.path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [r["step"] for r in tiny_run.metrics]


def test_api_and_cli_runs_give_the_same_losses(tiny_run, tmp_path):
    cli.train_main([*TINY, "--out", str(tmp_path / "cli")])
    records = [json.loads(line) for line in (tmp_path / "cli" / "metrics.jsonl").open()]

    def losses(records):
        return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in records]

    assert losses(records) == losses(tiny_run.metrics)


def test_adapt_shape_range_and_determinism(tiny_run):
    adapter = pixelda.load(tiny_run.checkpoint)
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    z = torch.rand(5, adapter.latent_dim) * 2 - 1
    out = adapter.adapt(x, z=z)
    assert out.shape == (5, 3, 16, 16) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, adapter.adapt(x, z=z))
    assert not torch.equal(out, adapter.adapt(x, z=-z))
    assert torch.equal(adapter.adapt(x, seed=3), adapter.adapt(x, seed=3))
    assert not torch.equal(adapter.adapt(x, seed=3), adapter.adapt(x, seed=4))
    many = adapter.adapt(x, variants=3, seed=0)
    assert many.shape == (3, 5, 3, 16, 16) and not torch.equal(many[0], many[1])


def test_adapt_accepts_uint8_and_pil_images_of_any_size(tiny_run):
    adapter = pixelda.load(tiny_run.path, device="cpu")  # a run folder works too
    pixels = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)  # grayscale, larger
    out = adapter.adapt(pixels, seed=0)
    assert out.shape == (2, 3, 16, 16)
    pictures = [Image.fromarray(p[0].numpy(), "L") for p in pixels]
    assert torch.allclose(adapter.adapt(pictures, seed=0), out)
    assert adapter.adapt(Image.new("RGB", (40, 24)), seed=0).shape == (1, 3, 16, 16)


def test_classify_and_logits(tiny_run):
    adapter = tiny_run.load()
    x = adapter.adapt(torch.zeros(6, 3, 16, 16), seed=1)
    labels = adapter.classify(x)
    assert labels.shape == (6,) and labels.dtype == torch.int64
    logits = adapter.predict_logits(x)
    assert logits.shape == (6, len(adapter.classes))
    assert torch.equal(logits.argmax(1), labels)


def test_export_through_the_api_writes_labels_csv(tiny_run, tmp_path):
    out = pixelda.export(tiny_run.checkpoint, tmp_path / "adapted", limit=6, progress=False)
    assert out == (tmp_path / "adapted").resolve()
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all((out / r["file"]).is_file() for r in rows)


@pytest.mark.parametrize(
    "call,expected",
    [
        (lambda tmp: pixelda.train(stepz=4, out=str(tmp / "r")), "did you mean 'steps'"),
        (lambda tmp: pixelda.train(steps="4", out=str(tmp / "r")), "steps expects int"),
        (lambda tmp: pixelda.train(logger="mlflow", out=str(tmp / "r")), "--logger"),
        (lambda tmp: pixelda.export(tmp / "ckpt.pt", tmp / "r", colour=1), "unknown option"),
        (lambda tmp: pixelda.load(tmp / "nothing.pt"), "no checkpoint"),
    ],
)
def test_bad_api_calls_raise_user_errors(call, expected, tmp_path):
    with pytest.raises(UserError, match=expected):
        call(tmp_path)
    assert not (tmp_path / "r").exists()


def test_a_cgan_checkpoint_generates_but_does_not_adapt(tmp_path, monkeypatch):
    from pixelda.methods import cgan

    monkeypatch.setattr(cgan, "evaluate", lambda m, data: {})  # skip training the judge
    run = pixelda.train(
        **TINY_OVERRIDES, method="cgan", latent_dim=4, embed_dim=4, out=tmp_path / "cgan"
    )
    adapter = run.load()
    with pytest.raises(UserError, match="generate"):
        adapter.adapt(torch.zeros(1, 1, 16, 16))
    images = adapter.generate([0, 1, 2], seed=0)
    assert images.shape == (3, adapter.channels, 16, 16)
    assert torch.equal(images, adapter.generate([0, 1, 2], seed=0))


def _no_package(monkeypatch, name):
    """Make `import name` fail, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, name, None)


def test_logger_without_its_package_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    _no_package(monkeypatch, "tensorboard")
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as e:
        cli.train_main([*TINY, "--out", str(out), "--logger", "tensorboard"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert 'pip install "pixelda[tensorboard]"' in err[0]
    assert not out.exists()
    with pytest.raises(UserError, match="tensorboard"):  # the API raises instead of exiting
        pixelda.train(**TINY_OVERRIDES, logger="tensorboard", out=out)
    assert not out.exists()


class FakeSummaryWriter:
    """torch.utils.tensorboard.SummaryWriter's calls, recorded."""

    instances: typing.ClassVar[list] = []

    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.images, self.closed = log_dir, [], [], False
        FakeSummaryWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step))

    def add_image(self, tag, array, step, dataformats):
        self.images.append((tag, step, array.shape, dataformats))

    def close(self):
        self.closed = True


def test_the_loop_feeds_every_record_and_grid_to_the_trackers(tmp_path, monkeypatch):
    from pixelda import loggers

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeSummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    monkeypatch.setattr(loggers, "require", lambda spec: None)
    FakeSummaryWriter.instances.clear()
    cli.train_main([*TINY, "--out", str(tmp_path / "run"), "--logger", "tensorboard"])
    (writer,) = FakeSummaryWriter.instances
    assert writer.closed and writer.log_dir == str(tmp_path / "run" / "tensorboard")
    assert {("train/g_loss", s) for s in (1, 2, 3, 4)} <= set(writer.scalars)
    assert {("eval/target_test_acc", s) for s in (2, 4)} <= set(writer.scalars)
    assert [(tag, step) for tag, step, _, _ in writer.images] == [("samples", 2), ("samples", 4)]


def test_wandb_logger_honours_offline_mode(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("wandb")

    class FakeRun:
        def log(self, data, step):
            calls.append(("log", step, sorted(data)))

        def finish(self):
            calls.append(("finish",))

    def init(**kwargs):
        calls.append(("init", kwargs["mode"], kwargs["config"]["steps"]))
        return FakeRun()

    fake.init, fake.Image = init, lambda picture: picture
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    pixelda.train(**TINY_OVERRIDES, logger="wandb", out=tmp_path / "run")
    assert calls[0] == ("init", "offline", 4) and calls[-1] == ("finish",)
    assert ("log", 4, ["samples"]) in calls


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    run = pixelda.train(**TINY_OVERRIDES, logger="tensorboard", out=tmp_path / "run")
    assert list((run.path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "main,config",
    [
        ("train_main", "config.TrainConfig"),
        ("evaluate_main", "evaluation.EvaluateConfig"),
        ("export_main", "exporting.ExportConfig"),
    ],
)
def test_every_entry_point_help_lists_each_flag_once_with_its_default(main, config, capsys):
    import dataclasses
    import importlib

    module, name = config.split(".")
    cls = getattr(importlib.import_module(f"pixelda.{module}"), name)
    with pytest.raises(SystemExit) as e:
        getattr(cli, main)(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert e.value.code == 0
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        assert f" {flag} " in text or f" {flag}, " in text
        assert f.metadata.get("help") and " ".join(f.metadata["help"].split()) in text
    assert text.count("(default:") == len(dataclasses.fields(cls))
