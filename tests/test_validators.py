"""Label-free validators: each against a hand-computed value on a tiny case, which way each
points, and compute() as the loop calls it (eval mode, inference mode, modes and RNG kept)."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from pixelda import cli, config, validators
from pixelda.data import ImageSet
from pixelda.errors import UserError
from pixelda.methods import METHODS, DataInfo


def _h(*p: float) -> float:
    """Entropy (nats) of a distribution written out by hand."""
    return -sum(x * math.log(x) for x in p if x > 0)


# Two images, two classes: softmax([0, 0]) = (1/2, 1/2), softmax([log 3, 0]) = (3/4, 1/4).
TWO = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])


def test_entropy_hand_value():
    assert validators.entropy(TWO) == pytest.approx((_h(0.5, 0.5) + _h(0.75, 0.25)) / 2)


def test_im_hand_value():
    # mean prediction (5/8, 3/8)
    expected = _h(0.625, 0.375) - (_h(0.5, 0.5) + _h(0.75, 0.25)) / 2
    assert validators.im(TWO) == pytest.approx(expected)


def test_im_and_entropy_prefer_confident_diverse_predictions():
    diverse = 20 * torch.eye(3).repeat(4, 1)  # confident, each class 4 times
    constant = 20 * torch.eye(3)[[0] * 12]  # confident, always class 0
    uniform = torch.zeros(12, 3)
    assert validators.im(diverse) == pytest.approx(math.log(3), abs=1e-6)
    assert validators.im(constant) == pytest.approx(0.0, abs=1e-6)
    assert validators.im(uniform) == pytest.approx(0.0, abs=1e-9)
    assert validators.better("im", validators.im(diverse), validators.im(constant))
    assert validators.better("entropy", validators.entropy(diverse), validators.entropy(uniform))
    # entropy alone cannot tell a collapsed classifier from a good one; im can
    assert validators.entropy(constant) == pytest.approx(validators.entropy(diverse))


def test_snd_hand_value():
    # Predictions (almost exactly) one-hot: e0, e0, e1. Image 0's neighbours (1, 2) have
    # cosine similarities (1, 0), so its neighbour distribution is softmax((1, 0) / T); the
    # same for image 1; image 2's neighbours have (0, 0): uniform, entropy log 2.
    logits = 100 * torch.eye(2)[[0, 0, 1]]
    q = 1 / (1 + math.exp(-1 / 0.05))
    expected = (2 * _h(q, 1 - q) + math.log(2)) / 3
    assert validators.snd(logits) == pytest.approx(expected, abs=1e-9)


def test_snd_prefers_dense_neighbourhoods():
    clustered = 20 * torch.eye(3).repeat(10, 1)  # 10 images per class, confident
    scattered = 5 * torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    assert validators.snd(clustered) == pytest.approx(math.log(9), abs=1e-6)
    assert validators.better("snd", validators.snd(clustered), validators.snd(scattered))


def test_dev_risk_hand_value():
    losses = torch.tensor([1.0, 0.0, 2.0, 1.0])
    weights = torch.tensor([0.5, 1.5, 1.0, 2.0])
    # w l = (0.5, 0, 2, 2), mean 1.125; mean w = 1.25
    # Cov(w l, w) = [(-0.625)(-0.75) + (-1.125)(0.25) + (0.875)(-0.25) + (0.875)(0.75)] / 3
    #             = (0.46875 - 0.28125 - 0.21875 + 0.65625) / 3 = 0.625 / 3
    # Var(w) = (0.5625 + 0.0625 + 0.0625 + 0.5625) / 3 = 1.25 / 3; eta = -0.5
    expected = 1.125 + (-0.5) * 1.25 - (-0.5)
    assert validators.dev_risk(losses, weights) == pytest.approx(expected)
    # equal weights: no correction, the plain mean loss
    assert validators.dev_risk(losses, torch.ones(4)) == pytest.approx(1.0)


def test_density_ratio_weighs_target_like_source_images_up():
    g = torch.Generator().manual_seed(0)
    f_src = torch.randn(400, 2, generator=g)
    f_tgt = torch.randn(400, 2, generator=g) + torch.tensor([2.0, 0.0])
    points = torch.tensor([[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    w = validators.density_ratio(f_src, f_tgt, points)
    assert w[0] < w[1] < w[2]
    # Gaussians with equal covariance: the true log ratio is linear, 2 x_1 - 2; unpenalized,
    # the fit finds it; the default penalty shrinks it towards 0 (tamer weights)
    exact = validators.density_ratio(f_src, f_tgt, points, l2=0.0).log()
    assert exact.tolist() == pytest.approx([-6.0, -2.0, 2.0], abs=0.6)
    assert (w.log().abs() < exact.abs()).all()
    same = validators.density_ratio(f_src, torch.randn(400, 2, generator=g), f_src)
    assert same.mean().item() == pytest.approx(1.0, abs=0.1)


def test_dev_weights_stay_tame_when_the_domains_are_separable():
    g = torch.Generator().manual_seed(0)
    f_src = torch.randn(300, 4, generator=g)
    f_tgt = torch.randn(300, 4, generator=g) + 12.0  # far apart: raw ratios explode
    raw = validators.density_ratio(f_src, f_tgt, torch.cat([f_src, f_tgt]), l2=0.0).double()
    assert raw.max() / raw.min() > 1e12
    w = validators.tame(raw)
    assert w.mean().item() == pytest.approx(1.0, abs=1e-5)
    assert (w.max() / w.min()).item() <= validators.DEV_MAX_WEIGHT**2 * (1 + 1e-5)
    losses = torch.rand(600, generator=g)
    assert abs(validators.dev_risk(losses, w)) < 10 * losses.max().item()
    assert torch.equal(validators.tame(torch.ones(5)), torch.ones(5))


def test_dev_is_lower_when_source_errors_avoid_target_like_images():
    weights = torch.tensor([0.1, 0.1, 1.9, 1.9])  # the last two look like the target
    errs_far = torch.tensor([2.0, 2.0, 0.1, 0.1])
    errs_near = torch.tensor([0.1, 0.1, 2.0, 2.0])
    assert validators.better(
        "dev", validators.dev_risk(errs_far, weights), validators.dev_risk(errs_near, weights)
    )


def test_kid_hand_value():
    # D = 1, k(a, b) = (a b + 1)^3; X = {0, 1}, Y = {1, 2}
    # k_xx off-diagonal: k(0, 1) = 1 -> 1; k_yy: k(1, 2) = 27 -> 27
    # k_xy: k(0,1) + k(0,2) + k(1,1) + k(1,2) = 1 + 1 + 8 + 27 = 37 -> 37 / 4
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    assert validators.kid(x, y) == pytest.approx(1 + 27 - 2 * 37 / 4)
    assert validators.kid(x, y) == pytest.approx(validators.kid(y, x))


def test_kid_is_zero_in_expectation_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)

    def draw(shift=0.0):
        return torch.randn(100, 8, generator=g) + shift

    same = [validators.kid(draw(), draw()) for _ in range(10)]
    shifted = [validators.kid(draw(), draw(0.5)) for _ in range(10)]
    spread = torch.tensor(same).std().item()
    assert abs(sum(same) / 10) < spread  # unbiased: the mean is within noise of 0
    assert min(shifted) > max(same)
    assert validators.better("kid", sum(same) / 10, sum(shifted) / 10)


def test_label_keeping_hand_value():
    src = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    fake = torch.tensor([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 1.0, 0.0], [5.0, 0.0, 0.0]])
    assert validators.label_keeping(src, fake) == pytest.approx(0.75)


def test_im_kept_is_im_times_label_keeping_and_im_without_a_generator():
    assert validators.im_kept(1.5, 0.8) == pytest.approx(1.2)
    assert validators.im_kept(1.5, None) == 1.5
    # A confident, diverse T whose generator changed a fifth of the digits ranks below a
    # slightly less confident one whose generator kept them.
    assert validators.better("im_kept", validators.im_kept(1.6, 1.0), validators.im_kept(1.9, 0.8))


def test_config_names_every_validator_and_directions_are_complete():
    assert set(config.VALIDATORS) == set(validators.HIGHER_IS_BETTER)
    assert validators.better("entropy", 0.1, 0.2) and not validators.better("im", 0.1, 0.2)
    assert not validators.better("im", 0.2, 0.2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"select_by": "accuracy"}, "expected one of"),
        ({"select_by": "kid", "method": "dann"}, "needs PixelDA's generator"),
        ({"select_by": "im", "task": "regression"}, "needs class labels"),
        ({"validation_images": 5}, "or >= 10"),
    ],
)
def test_select_by_is_checked(overrides, message):
    with pytest.raises(UserError, match=message):
        config.resolve(overrides)
    assert config.resolve({}).select_by == "im_kept"
    assert config.resolve({"task": "regression"}).select_by == "dev"


def _images(n, seed, size=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _run_data(*, regression=False, n=24, size=16):
    labels = (
        torch.rand(n, 2, generator=torch.Generator().manual_seed(3))
        if regression
        else torch.arange(n) % 3
    )
    classes = None if regression else ["a", "b", "c"]
    return SimpleNamespace(
        source_train=ImageSet(_images(n, 0, size), labels, "src", classes),
        source_test=ImageSet(_images(n, 1, size), labels, "src-test", classes),
        target_train=ImageSet(_images(n, 2, size), None, "tgt"),
    )


def test_build_data_is_fixed_and_keeps_held_out_source_apart():
    data = _run_data()
    a, b = validators.build_data(data, size=10), validators.build_data(data, size=10)
    assert torch.equal(a.x_tgt, b.x_tgt) and torch.equal(a.x_src, b.x_src)
    assert len(a.x_tgt) == 10 and len(a.x_src) == 10 and len(a.x_src_train) == 10
    # no source test split: held-out images come from the training images DEV does not fit
    data.source_test = None
    c = validators.build_data(data, size=10)
    fit = {bytes(x.numpy()) for x in c.x_src_train}
    assert not fit & {bytes(x.numpy()) for x in c.x_src}
    assert validators.build_data(data, size=0) is None  # --validation-images 0: none
    data.target_train = None
    assert validators.build_data(data) is None


EXPECTED = {
    ("pixelda", False): {"dev", "entropy", "im", "snd", "kid", "label_keeping", "im_kept"},
    ("dann", False): {"dev", "entropy", "im", "snd", "im_kept"},
    ("source-only", False): {"dev", "entropy", "im", "snd", "im_kept"},
    ("pixelda", True): {"dev", "kid"},
    ("source-only", True): {"dev"},
}


@pytest.mark.parametrize("method, regression", list(EXPECTED))
@pytest.mark.parametrize("training", [True, False])
def test_compute_runs_in_eval_and_inference_mode_and_restores_modes(method, regression, training):
    cfg = config.resolve(
        {"method": method, "image_size": 16, "g_width": 8, "g_blocks": 1, "d_width": 8}
    )
    info = DataInfo(3, 16, 2 if regression else 3, None if regression else ["a", "b", "c"])
    torch.manual_seed(0)
    models = METHODS[method].build(cfg, info).train(training)
    seen = []
    for m in models.modules():
        m.register_forward_pre_hook(
            lambda mod, args: seen.append((mod.training, torch.is_inference_mode_enabled()))
        )
    rng = torch.get_rng_state()
    out = validators.compute(
        models, method, validators.build_data(_run_data(regression=regression))
    )
    rare = set() if regression else {"target_rarest_class", "target_rarest_share"}
    counts = out.pop("target_class_counts", None)
    assert set(out) == {f"validator_{k}" for k in EXPECTED[method, regression]} | rare
    assert all(math.isfinite(v) for v in out.values())
    # The target subset's class counts: one per class, over every image of the subset.
    assert counts is None if regression else len(counts) == 3 and sum(counts) == 24
    assert seen and all(not train and inference for train, inference in seen)
    assert all(m.training == training for m in models.modules())
    assert torch.equal(torch.get_rng_state(), rng)  # the run's random numbers are untouched


def test_compute_logs_nothing_without_a_classifier_or_target():
    cfg = config.resolve({"method": "cgan", "image_size": 16, "g_width": 8, "d_width": 8})
    models = METHODS["cgan"].build(cfg, DataInfo(3, 16, 3, ["a", "b", "c"]))
    assert validators.compute(models, "cgan", validators.build_data(_run_data())) == {}
    assert validators.compute(models, "cgan", None) == {}


def test_compute_with_a_resnet_backbone():
    cfg = config.resolve({"method": "dann", "image_size": 32, "backbone": "resnet18"})
    models = METHODS["dann"].build(cfg, DataInfo(3, 32, 3, ["a", "b", "c"])).train()
    data = validators.build_data(_run_data(size=32), size=10)
    out = validators.compute(models, "dann", data)
    names = ("dev", "entropy", "im", "snd", "im_kept")
    rare = {"target_rarest_class", "target_rarest_share", "target_class_counts"}
    assert set(out) == {f"validator_{k}" for k in names} | rare
    out.pop("target_class_counts")
    assert all(math.isfinite(v) for v in out.values())
    assert all(m.training for m in models.modules())


def test_without_labeled_validation_best_pt_follows_select_by(tmp_path):
    """A flat (unlabeled) target folder has no validation split: best.pt keeps the evaluation
    with the best --select-by validator, in that validator's direction."""
    from pixelda import checkpoint

    from .conftest import TINY, write_image_folder

    source = write_image_folder(tmp_path / "src", classes=3, per_class=20, size=16)
    photos = write_image_folder(tmp_path / "t", classes=1, per_class=12, size=16, seed=1)
    target = tmp_path / "photos"
    target.mkdir()
    for i, f in enumerate(sorted((photos / "class0").iterdir())):  # flat: no class folders
        f.rename(target / f"{i}.png")
    out = tmp_path / "run"
    summary = cli.train_main(
        [
            *TINY,
            "--out",
            str(out),
            "--steps",
            "4",
            "--eval-every",
            "1",
            "--source",
            f"folder:{source}",
            "--target",
            f"folder:{target}",
            "--select-by",
            "entropy",
        ]
    )
    evals = [
        r
        for r in json.loads("[" + ",".join((out / "metrics.jsonl").read_text().splitlines()) + "]")
        if r["kind"] == "eval"
    ]
    assert "target_val_acc" not in evals[0]
    best = min(evals, key=lambda r: (r["validator_entropy"], r["step"]))  # lower is better
    assert summary["best"] == {
        "step": best["step"],
        "metric": "validator_entropy",
        "value": best["validator_entropy"],
    }
    assert checkpoint.load(out / "best.pt")["step"] == best["step"]


def test_rarest_class_by_hand():
    # 8 images over 4 classes: class 3 twice, 0 three times, 1 three times, 2 never.
    logits = torch.nn.functional.one_hot(torch.tensor([3, 0, 0, 1, 1, 0, 1, 3]), 4).float()
    assert validators.rarest_class(logits) == (2, 0.0)
    # Class 3 is rarest when class 2 is not missing: 1 of 8 images, K = 4 -> 0.5.
    logits = torch.nn.functional.one_hot(torch.tensor([3, 0, 0, 1, 1, 2, 2, 2]), 4).float()
    assert validators.rarest_class(logits) == (3, 0.5)


def test_rare_class_flag_names_the_class_below_a_quarter_of_its_even_share():
    assert validators.rare_class_flag(2, validators.RARE_SHARE) == ""
    assert "class 2 " in validators.rare_class_flag(2, 0.1)
    assert "class nine " in validators.rare_class_flag(1, 0.0, ["eight", "nine"])


def test_the_loop_warns_when_labels_or_a_class_are_lost(capsys):
    from types import SimpleNamespace

    from pixelda import adversarial

    run = SimpleNamespace(
        info={"classes": ["zero", "one"]}, cfg=SimpleNamespace(select_by="im_kept")
    )
    state = adversarial.LoopState(step=7)
    healthy = {
        "validator_label_keeping": 0.97,
        "target_rarest_class": 1,
        "target_rarest_share": 0.8,
    }
    adversarial.warn_if_broken(run, state, healthy)
    assert capsys.readouterr().out == ""
    broken = {
        "validator_label_keeping": 0.5,
        "target_rarest_class": 1,
        "target_rarest_share": 0.1,
    }
    adversarial.warn_if_broken(run, state, broken)
    # A rare class is flagged from its second evaluation in a row on.
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "label keeping 0.50" in lines[0]
    adversarial.warn_if_broken(run, state, broken)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: step 7: ") for line in lines)
    assert "label keeping 0.50" in lines[0] and "class one " in lines[1]
    adversarial.warn_if_broken(run, state, healthy)
    adversarial.warn_if_broken(run, state, {**healthy, "target_rarest_share": 0.1})
    assert "class one" not in capsys.readouterr().out


def test_shrinking_class_by_hand():
    # Class 1 fell from 40 to 28 images (0.7), class 2 from 30 to 27 (0.9); class 3 grew, and
    # class 0 had too few images at the reference to be judged (10 -> 0).
    reference = [10, 40, 30, 20]
    assert validators.shrinking_class([0, 28, 27, 45], reference) == (1, 0.7)
    assert validators.shrinking_class([0, 40, 30, 20], [10, 19, 5, 0]) == (-1, 1.0)
    # Flagged below 1 - SHRINK of the reference, by name where the run has names.
    assert validators.shrinking_class_flag(1, 1 - validators.SHRINK, 500) == ""
    assert validators.shrinking_class_flag(-1, 1.0, 500) == ""
    flag = validators.shrinking_class_flag(1, 0.7, 500, ["zero", "nine"])
    assert flag.startswith("class nine is predicted for 0.70 ") and "step 500" in flag


def test_the_loop_warns_when_a_class_shrinks_for_two_evaluations_without_improving(capsys):
    from types import SimpleNamespace

    from pixelda import adversarial

    run = SimpleNamespace(
        info={"classes": ["zero", "one"]}, cfg=SimpleNamespace(select_by="im_kept")
    )

    state = adversarial.LoopState()

    def evaluate(step, im_kept, counts):
        metrics = {"validator_im_kept": im_kept, "target_class_counts": counts}
        state.step = step
        adversarial.warn_if_broken(run, state, metrics)
        return metrics

    # Improving evaluations are never flagged, however classes move: each is the new reference.
    assert "target_shrinking_ratio" not in evaluate(1, 1.0, [50, 50])
    assert evaluate(2, 1.5, [90, 10])["target_shrinking_ratio"] == 0.2
    evaluate(3, 1.6, [60, 40])
    assert capsys.readouterr().out == ""
    # Worse than the best score, class one down to 0.75 of its 40 images: once is not enough.
    metrics = evaluate(4, 1.5, [70, 30])
    assert "target_class_counts" not in metrics  # the log keeps scalars
    assert (metrics["target_shrinking_class"], metrics["target_shrinking_ratio"]) == (1, 0.75)
    assert capsys.readouterr().out == ""
    evaluate(5, 1.5, [71, 29])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: step 5: class one is predicted for")
    assert "at step 3 " in lines[0]
    # Kept for the run's summary and final lines, without the console's pointer to select.
    assert state.watch.warnings == [lines[0].removeprefix("warning: ").split(" (python -m")[0]]
    # Within 1 - SHRINK of the reference again: no warning.
    evaluate(6, 1.5, [68, 33])
    assert capsys.readouterr().out == ""
