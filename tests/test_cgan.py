"""The conditional GAN: labels steer G and D, one shared loop, exact resume, the cached judge."""

import json

import pytest
import torch

from pixelda import adversarial, checkpoint, cli, judge, training
from pixelda import data as data_sources
from pixelda.data import DataOptions, load
from pixelda.flags import parse_train_args
from pixelda.methods import METHODS, cgan, restore
from pixelda.models import ConditionalDiscriminator, ConditionalGenerator

from .conftest import TINY

# The shared tiny flags, with what the cGAN needs on top (later flags win).
TINY_CGAN = [*TINY, "--method", "cgan", "--batch-size", "8", "--latent-dim", "4"]


_EMBEDDED = {}


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    """A 30-step judge (far above chance on real digits, in a second), 20 samples per class,
    and the embedded digits parsed once per session (parsing the CSV takes seconds)."""
    monkeypatch.setattr(judge, "STEPS", 30)
    monkeypatch.setattr(cgan, "SAMPLES_PER_CLASS", 20)
    parse = data_sources.load_embedded_mnist

    def parsed_once(split):
        if split not in _EMBEDDED:
            _EMBEDDED[split] = parse(split)
        return _EMBEDDED[split]

    monkeypatch.setattr(data_sources, "load_embedded_mnist", parsed_once)


def _run(tmp_path, name="run", extra=()):
    return cli.train_main([*TINY_CGAN, "--out", str(tmp_path / name), *extra])


def _trained_pair():
    torch.manual_seed(0)
    g = ConditionalGenerator(num_classes=10, out_channels=1, image_size=16, latent_dim=4, width=8)
    d = ConditionalDiscriminator(num_classes=10, in_channels=1, image_size=16, width=8)
    # Weights as after training, not the near-zero N(0, 0.02) init: labels must matter
    # through the architecture, not through a lucky initialisation.
    for p in [*g.parameters(), *d.parameters()]:
        torch.nn.init.normal_(p, 0.0, 0.3)
    return g.eval(), d.eval()


def test_generator_follows_labels_and_discriminator_reads_them():
    g, d = _trained_pair()
    z = (torch.rand(1, 4) * 2 - 1).expand(10, -1)
    with torch.no_grad():
        x = g(z, torch.arange(10))
        assert x.shape == (10, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
        # Same noise, ten labels: ten different images.
        assert torch.cdist(x.flatten(1), x.flatten(1))[~torch.eye(10, dtype=bool)].min() > 1e-3
        # Same images, other labels: other logits.
        logits = d(x, torch.arange(10))
        assert logits.shape == (10,)
        assert (logits - d(x, (torch.arange(10) + 1) % 10)).abs().min() > 1e-4


def test_generate_is_eval_mode_and_deterministic():
    g, _ = _trained_pair()
    m = torch.nn.ModuleDict({"generator": g.train()})
    labels, z = torch.tensor([3, 3, 7]), torch.rand(3, 4) * 2 - 1
    a, b = cgan.generate(m, labels, z), cgan.generate(m, labels, z)
    assert torch.equal(a, b) and not a.requires_grad and g.training  # mode restored
    # Alone or in a batch, the same image: no batch statistics are used.
    assert torch.allclose(a[:1], cgan.generate(m, labels[:1], z[:1]), atol=1e-5)


class _Stop(Exception):
    pass


def test_both_methods_run_through_the_one_shared_fit(tmp_path, tiny_args, monkeypatch):
    assert training.fit is adversarial.fit  # the entry point's loop is the shared one
    seen = []

    def spy(run, state):
        seen.append((run.method, run.method.train_step))
        raise _Stop  # the loop itself is exercised by the runs below

    monkeypatch.setattr(training, "fit", spy)
    for method, args in (("pixelda", tiny_args), ("cgan", TINY_CGAN)):
        with pytest.raises(_Stop):
            cli.train_main([*args, "--method", method, "--out", str(tmp_path / method)])
    assert seen == [(METHODS["pixelda"], METHODS["pixelda"].train_step), (cgan, cgan.train_step)]


def test_the_shared_loop_calls_the_cgan_step(tmp_path, monkeypatch):
    calls = []
    step = cgan.train_step

    def counted(*args):
        calls.append(args[4])  # progress, as the shared loop computes it
        return step(*args)

    monkeypatch.setattr(cgan, "train_step", counted)
    _run(tmp_path)
    assert calls == [0.0, 0.25, 0.5, 0.75]


def test_cgan_run_metrics_grid_and_summary(tmp_path):
    summary = _run(tmp_path)
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        assert 0.0 <= r["conditional_acc"] <= 1.0 and 0.0 <= r["pred_hist_min"] <= 0.1
        assert len(r["pred_hist"]) == 10 and sum(r["pred_hist"]) == pytest.approx(1.0, abs=1e-3)
        assert 0.5 < r["judge_test_acc"] <= 1.0  # a real judge, far above chance
    assert {"d_loss", "g_loss"} <= records[0].keys()
    assert summary["metrics"]["conditional_acc"] == evals[-1]["conditional_acc"]
    from PIL import Image

    # 10 rows (classes) x 10 columns (noise) of 16px cells enlarged to 64px with 2px padding.
    assert Image.open(run / "samples" / "latest.png").size == (10 * 66 + 2, 10 * 66 + 2)
    assert (run / "curves.png").is_file()


def test_interrupted_and_resumed_run_logs_the_same_losses(tmp_path):
    _run(tmp_path, "straight")
    _run(tmp_path, "resumed", extra=["--steps", "2"])
    cli.train_main(
        ["--out", str(tmp_path / "resumed"), "--resume", "--steps", "4", "--no-progress"]
    )

    def records(name):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if not k.endswith("_s")} for x in lines]

    assert records("straight") == records("resumed")
    # Both final checkpoints restore to the same generator.
    labels, z = torch.arange(10), torch.rand(10, 4) * 2 - 1
    images = [
        cgan.generate(restore(checkpoint.load(tmp_path / name / "ckpt.pt"))[2], labels, z)
        for name in ("straight", "resumed")
    ]
    assert torch.equal(*images)


def test_judge_is_trained_once_then_loaded_from_the_cache(tmp_path, monkeypatch):
    opts = DataOptions(image_size=16)
    data = load("mnist", "train", opts)
    a = judge.load_or_train(data, tmp_path)
    assert len(list((tmp_path / "judges").glob("*.pt"))) == 1

    def no_training(_):
        raise AssertionError("the cached judge should have been loaded")

    monkeypatch.setattr(judge, "train_judge", no_training)
    b = judge.load_or_train(data, tmp_path)
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and not b.training
    # Another image size is another judge.
    other = load("mnist", "train", DataOptions(image_size=20))
    assert judge.cache_path(other, tmp_path) != judge.cache_path(data, tmp_path)


def test_cgan_defaults_apply_under_user_flags_only_for_cgan():
    assert parse_train_args(["--method", "cgan"]).image_size == 28
    assert parse_train_args(["--method", "cgan", "--image-size", "32"]).image_size == 32
    assert parse_train_args([]).image_size == 32
    assert METHODS["cgan"] is cgan


def test_weight_average_moves_by_one_minus_decay_and_copies_bn_statistics():
    torch.manual_seed(0)
    kw = {"num_classes": 10, "out_channels": 1, "image_size": 16, "latent_dim": 4, "width": 8}
    model = ConditionalGenerator(**kw)
    ema = cgan.weight_average(model, 0.9)
    ema.update_parameters(model)  # the first update copies G
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.body[0].running_mean.fill_(0.5)
    before = [p.clone() for p in ema.module.parameters()]
    ema.update_parameters(model)  # n = 1: decay min(0.9, 2 / 11)
    decay = 2 / 11
    for b, p_ema, p in zip(before, ema.module.parameters(), model.parameters()):
        assert torch.allclose(p_ema, decay * b + (1 - decay) * p)
    assert torch.equal(ema.module.body[0].running_mean, model.body[0].running_mean)
    for _ in range(100):  # late on the decay is capped at 0.9
        ema.update_parameters(model)
    before = [p.clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update_parameters(model)
    for b, p_ema, p in zip(before, ema.module.parameters(), model.parameters()):
        assert torch.allclose(p_ema, 0.9 * b + 0.1 * p, atol=1e-6)


def test_export_writes_a_labeled_dataset_from_a_cgan_checkpoint(tmp_path, tiny_args):

    args = [a if a != "4" else "2" for a in tiny_args]
    cli.train_main([*args, "--method", "cgan"])
    out = tmp_path / "synthetic"
    cli.export_main(
        [
            "--checkpoint",
            str(tmp_path / "run" / "ckpt.pt"),
            "--out",
            str(out),
            "--limit",
            "20",
            "--no-progress",
        ]
    )
    rows = (out / "labels.csv").read_text().splitlines()[1:]
    assert len(rows) == 20
    for row in rows:
        file, label = row.split(",")[:2]
        assert (out / file).is_file() and file.split("/")[0] == label
