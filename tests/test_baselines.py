"""Baselines beside PixelDA: source-only, target-only and DANN through the shared loop."""

import dataclasses
import json
import signal
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pixelda import checkpoint, cli, losses, rundata
from pixelda.batches import Batch
from pixelda.grl import dann_lambda
from pixelda.methods import METHODS, DataInfo, dann, restore
from pixelda.models import DomainClassifier
from pixelda.ownership import write_marker

from .conftest import TINY

ALL = ("source-only", "target-only", "dann", "pixelda")
TIMING = {"wall_s", "train_s"}


def train_records(run) -> list[dict]:
    """metrics.jsonl without the timings, which differ between any two runs."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def final_weights(run) -> dict:
    return checkpoint.load(run / "ckpt.pt")["models"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[m].keys() == b[m].keys() and all(torch.equal(a[m][k], b[m][k]) for k in a[m]) for m in a
    )


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    """One tiny uninterrupted, unpoisoned run per method, shared by the tests below."""
    root = tmp_path_factory.mktemp("clean")
    runs = {}
    for method in ALL:
        out = root / method
        runs[method] = (out, cli.train_main([*TINY, "--method", method, "--out", str(out)]))
    return runs


@pytest.mark.parametrize("method", ALL)
def test_each_method_writes_a_complete_run_directory(clean_runs, method):
    run, _ = clean_runs[method]
    for name in (
        "config.json",
        "metrics.jsonl",
        "ckpt.pt",
        "curves.png",
        "summary.json",
        "samples/latest.png",
        "samples/step_0000004.png",
    ):
        assert (run / name).is_file(), name
    stored = json.loads((run / "summary.json").read_text())
    assert stored["method"] == method and stored["steps"] == 4 and stored["finished"]
    assert 0.0 <= stored["target_test_acc"] <= 1.0 and 0.0 <= stored["source_test_acc"] <= 1.0
    cfg, _, models = restore(checkpoint.load(run / "ckpt.pt"))
    assert cfg.method == method and set(models) == set(final_weights(run))


def test_dann_logs_its_lambda_schedule_and_domain_metrics(clean_runs):
    run, summary = clean_runs["dann"]
    records = train_records(run)
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    # train_step sees progress (step - 1) / steps; cfg.dann_weight is 1 by default
    assert [r["lambda"] for r in steps] == [dann_lambda(i / 4) for i in range(4)]
    assert all(r["domain_loss"] > 0 and r["task_loss"] > 0 for r in steps)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(0.0 <= r["domain_acc"] <= 1.0 for r in evals)
    assert summary["metrics"]["domain_acc"] == evals[-1]["domain_acc"]


def test_domain_classifier_shape():
    out = DomainClassifier(in_features=12, hidden=7)(torch.randn(5, 12))
    assert out.shape == (5,) and out.dtype == torch.float32


def _tiny_dann(seed: int = 0):
    torch.manual_seed(seed)
    info = DataInfo(channels=3, image_size=16, num_outputs=10, classes=None)
    return dann.build(SimpleNamespace(backbone="tower", pretrained=False), info)


def test_dann_step_equals_a_hand_written_gradient_reversal():
    """One step with plain SGD(lr=1): every parameter moves by minus its gradient. By hand:
    label predictor <- task loss; domain classifier <- domain loss; features <- task loss
    minus lambda times domain loss (the reversed gradient)."""
    m = _tiny_dann()
    cfg = SimpleNamespace(dann_weight=0.5, clip_grad_norm=0.0)
    g = torch.Generator().manual_seed(1)
    batch = Batch(
        x_src=torch.rand(4, 3, 16, 16, generator=g) * 2 - 1,
        y_src=torch.randint(0, 10, (4,), generator=g),
        mask_src=None,
        x_tgt=torch.rand(4, 3, 16, 16, generator=g) * 2 - 1,
    )
    lam = 0.5 * dann_lambda(0.3)

    feats_src = m["classifier"].features(batch.x_src)
    feats_tgt = m["classifier"].features(batch.x_tgt)
    task = losses.task_loss(m["classifier"].head(feats_src), batch.y_src)
    domain = losses.domain_loss(
        m["domain_classifier"](feats_src), m["domain_classifier"](feats_tgt)
    )
    f_params = list(m["classifier"].features.parameters())
    rest = list(m["classifier"].head.parameters()) + list(m["domain_classifier"].parameters())
    g_task = torch.autograd.grad(task, f_params, retain_graph=True)
    g_domain = torch.autograd.grad(domain, f_params + rest[-4:], retain_graph=True)
    g_head = torch.autograd.grad(task, rest[:-4])
    expected = (
        [-(t - lam * d) for t, d in zip(g_task, g_domain)]
        + [-h for h in g_head]
        + [-d for d in g_domain[len(f_params) :]]
    )
    before = [p.detach().clone() for p in f_params + rest]

    opts = {"dann": torch.optim.SGD([*m.parameters()], lr=1.0)}
    out = dann.train_step(m, opts, batch, cfg, progress=0.3)
    assert float(out["lambda"]) == pytest.approx(lam, abs=1e-15)
    assert float(out["task_loss"]) == pytest.approx(task.item(), rel=1e-6)
    assert float(out["domain_loss"]) == pytest.approx(domain.item(), rel=1e-6)
    for p, p0, step in zip(f_params + rest, before, expected):
        assert torch.allclose(p.detach() - p0, step, atol=1e-6)
    # the reversal matters: without it the features would move differently
    assert not torch.allclose(
        f_params[0].detach() - before[0], -(g_task[0] + lam * g_domain[0]), atol=1e-6
    )


class _MeanLogit(nn.Module):
    def forward(self, x):
        return x.mean(1)


def test_domain_accuracy_is_balanced_over_the_two_test_sets():
    """Bright images read as target, dark as source; target set is larger and half dark."""
    classifier = nn.Module()
    classifier.features = nn.Flatten()
    m = nn.ModuleDict({"classifier": classifier, "domain_classifier": _MeanLogit()})
    m["domain_classifier"].register_parameter("w", nn.Parameter(torch.zeros(1)))  # for predict
    dark, bright = (
        torch.full((3, 1, 4, 4), 10, dtype=torch.uint8),
        torch.full((3, 1, 4, 4), 240, dtype=torch.uint8),
    )
    source = SimpleNamespace(images=dark)
    target = SimpleNamespace(images=torch.cat([bright, bright, dark, dark]))  # 12 images
    assert dann.domain_accuracy(m, source, target) == pytest.approx((1.0 + 0.5) / 2)
    assert dann.domain_accuracy(m, source, SimpleNamespace(images=bright)) == 1.0
    assert dann.domain_accuracy(m, source, SimpleNamespace(images=dark)) == 0.5


def _poison_target_labels(monkeypatch) -> list:
    """Replace the labels of the target's training pool (the training split less its
    validation images) with wrong ones as it is carved out (all wrong, still valid classes);
    returns a list that records each poisoning."""
    real_split, poisoned = rundata.split_validation, []

    def split_validation(data, size, *args):
        pool, val = real_split(data, size, *args)
        g = torch.Generator().manual_seed(123)
        shift = torch.randint(1, 10, pool.labels.shape, generator=g)
        poisoned.append(data.name)
        return dataclasses.replace(pool, labels=(pool.labels + shift) % 10), val

    monkeypatch.setattr(rundata, "split_validation", split_validation)
    return poisoned


@pytest.mark.parametrize("method", ALL)
def test_only_target_only_can_see_target_training_labels(clean_runs, method, monkeypatch, tmp_path):
    poisoned = _poison_target_labels(monkeypatch)
    out = tmp_path / "poisoned"
    cli.train_main([*TINY, "--method", method, "--out", str(out)])
    assert poisoned == ["mnistm5k-train"]
    clean, _ = clean_runs[method]
    same = train_records(out) == train_records(clean)
    assert same == same_weights(final_weights(out), final_weights(clean))
    if method == "target-only":
        assert not same, "poisoned labels should change target-only's training"
    else:
        assert same, f"{method} depends on the target training labels"


def test_dann_interrupted_and_resumed_equals_uninterrupted(clean_runs, monkeypatch, tmp_path):
    out, real_step, calls = tmp_path / "run", dann.train_step, []

    def ctrl_c_after_two_steps(*args):
        calls.append(1)
        losses = real_step(*args)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # the loop's first Ctrl-C: stop and checkpoint
        return losses

    monkeypatch.setattr(dann, "train_step", ctrl_c_after_two_steps)
    first = cli.train_main([*TINY, "--method", "dann", "--out", str(out)])
    monkeypatch.setattr(dann, "train_step", real_step)
    assert first["steps"] == 2 and not first["finished"]
    second = cli.train_main(["--out", str(out), "--resume", "--no-progress"])
    assert second["steps"] == 4 and second["finished"]
    clean, _ = clean_runs["dann"]
    assert train_records(out) == train_records(clean)
    assert same_weights(final_weights(out), final_weights(clean))


def test_resuming_a_run_started_with_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # an old run to replace: pixelda's, by its marker
    write_marker(out, "run")
    args = [*TINY, "--method", "source-only", "--out", str(out), "--steps", "2"]
    cli.train_main([*args, "--overwrite"])
    assert (
        cli.train_main(["--out", str(out), "--resume", "--steps", "3", "--no-progress"])["steps"]
        == 3
    )


def test_max_minutes_stops_cleanly_with_a_final_evaluation(tmp_path):
    out = tmp_path / "run"
    summary = cli.train_main(
        [
            *TINY,
            "--method",
            "source-only",
            "--out",
            str(out),
            "--steps",
            "50",
            "--max-minutes",
            "1e-9",
            "--eval-every",
            "10",
        ]
    )
    assert summary["steps"] == 1 and summary["finished"] and summary["out_of_time"]
    assert summary["target_test_acc"] is not None
    assert checkpoint.load(out / "ckpt.pt")["step"] == 1
    assert [r["step"] for r in train_records(out) if r["kind"] == "eval"] == [1]
    assert (out / "samples" / "step_0000001.png").is_file()


def test_every_method_is_registered():
    from pixelda.config import METHODS as NAMES

    assert set(ALL) <= set(METHODS) and set(METHODS) <= set(NAMES)
