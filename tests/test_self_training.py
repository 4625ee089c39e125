"""Self-training (--target-weight): the loss by hand, the teacher's moving average, and a D-step
that learns from unlabeled target images."""

import dataclasses
import itertools
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pixelda.config import resolve
from pixelda.data import ImageSet
from pixelda.errors import UserError
from pixelda.methods import DataInfo, pixelda

from .conftest import tiny_pixelda


class FixedLogits(nn.Module):
    """A 'network' that returns the same logits for any batch."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_self_training_loss_matches_hand_computed_value():
    # Teacher probabilities: image 1 is sure of class 0 (e^5 / (e^5 + 1) > 0.9), image 2 is not.
    teacher = FixedLogits(torch.tensor([[5.0, 0.0], [0.1, 0.0]]))
    student = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    # Only image 1 counts: -log softmax([1, 0])[0] = log(1 + e^-1); divided by the batch (2).
    expected = math.log(1 + math.exp(-1)) / 2
    plain = {"target_balance": 0.0, "target_class_thresholds": False}  # one threshold
    cfg = resolve({"target_threshold": 0.9, **plain})
    loss = pixelda.self_training(teacher, torch.zeros(2, 1, 4, 4), student, cfg)
    assert loss.item() == pytest.approx(expected)
    # No confident image: no loss.
    cfg = resolve({"target_threshold": 0.999, **plain})
    assert pixelda.self_training(teacher, torch.zeros(2, 1, 4, 4), student, cfg).item() == 0
    # With the class balance: its weight times the shortfall of class 0, whose mean predicted
    # share is (sigmoid(1) + sigmoid(-3)) / 2 ~ 0.39, below 1/2 (floor 1) but not 1/4 (floor 0.5).
    share = (1 / (1 + math.exp(-1)) + 1 / (1 + math.exp(3))) / 2
    for floor, expected in ((1.0, 2 * (0.5 - share)), (0.5, 0.0)):
        flags = {**plain, "target_threshold": 0.999, "target_balance": 2.0}
        flags["target_balance_floor"] = floor
        loss = pixelda.self_training(teacher, torch.zeros(2, 1, 4, 4), student, resolve(flags))
        assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_class_balance_is_zero_when_even_and_most_when_one_class():
    # Two images, one sure of class 0, one of class 1: the mean is (1/2, 1/2), no shortfall.
    even = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])
    assert pixelda.class_balance(even).item() == pytest.approx(0.0, abs=1e-6)
    # Both sure of class 0: the mean is (1, 0); class 1 falls 1/2 short: (K - 1) / K.
    one = torch.tensor([[50.0, -50.0], [50.0, -50.0]])
    assert pixelda.class_balance(one).item() == pytest.approx(0.5)
    # By hand: mean (0.75, 0.25); class 1 is 0.25 short of 1/2.
    logits = torch.tensor([[0.0, -1e9], [0.0, 0.0]])
    assert pixelda.class_balance(logits).item() == pytest.approx(0.25)


def test_class_balance_floor_leaves_uneven_classes_alone_and_catches_a_lost_one():
    # Three classes, mean (0.5, 0.3, 0.2): uneven, but none below half of 1/3.
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    assert pixelda.class_balance(probs.log(), 0.5).item() == pytest.approx(0.0, abs=1e-6)
    # ... while floor 1 still pushes classes 1 and 2 up: (1/3 - 0.3) + (1/3 - 0.2).
    expected = (1 / 3 - 0.3) + (1 / 3 - 0.2)
    assert pixelda.class_balance(probs.log(), 1.0).item() == pytest.approx(expected)
    # Mean (0.6, 0.35, 0.05): class 2 is 1/6 - 0.05 short of half its even share; / 0.5.
    lost = torch.tensor([[0.6, 0.35, 0.05]])
    expected = (1 / 6 - 0.05) / 0.5
    assert pixelda.class_balance(lost.log(), 0.5).item() == pytest.approx(expected)


def test_class_balance_gradient_raises_only_the_short_class():
    logits = torch.tensor([[0.6, 0.35, 0.05]]).log().requires_grad_()
    pixelda.class_balance(logits, 0.5).backward()
    # Descending the loss raises the short class's logit and lowers the others'.
    assert logits.grad[0, 2] < 0 and (logits.grad[0, :2] > 0).all()


def test_running_class_balance_hinges_on_the_running_share_with_the_batchs_gradient():
    # Running shares (0.4, 0.4, 0.2), decay 0.9, a batch whose mean is (0.6, 0.35, 0.05):
    # the shares move to 0.9 * running + 0.1 * mean = (0.42, 0.395, 0.185).
    running = torch.tensor([0.4, 0.4, 0.2])
    logits = torch.tensor([[0.6, 0.35, 0.05]]).log().requires_grad_()
    loss = pixelda.class_balance(logits, 0.5, running=running, decay=0.9)
    assert running.tolist() == pytest.approx([0.42, 0.395, 0.185])
    # Class 2's running share is not short of 1/6, unlike the batch's: no loss, no gradient.
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert logits.grad.abs().max() == 0
    # Running shares with class 2 at 0.02: it is short, and the loss's value is its running
    # shortfall, (1/6 - 0.9 * 0.02 - 0.1 * 0.05) / 0.5, with the batch version's gradient.
    running = torch.tensor([0.49, 0.49, 0.02])
    logits.grad = None
    loss = pixelda.class_balance(logits, 0.5, running=running, decay=0.9)
    assert loss.item() == pytest.approx((1 / 6 - 0.9 * 0.02 - 0.1 * 0.05) / 0.5)
    loss.backward()
    batch = logits.detach().clone().requires_grad_()
    pixelda.class_balance(batch, 0.5).backward()
    torch.testing.assert_close(logits.grad, batch.grad)


def test_running_class_balance_counts_every_ranks_images(monkeypatch):
    # A second rank of 3 images whose mean prediction is (1, 0): its sums are (3, 0) over 3.
    other_rank = torch.tensor([3.0, 0.0, 3.0])
    monkeypatch.setattr(pixelda.distributed, "sum_all", lambda v: v.double() + other_rank)
    running = torch.tensor([0.5, 0.5])
    logits = torch.tensor([[-50.0, 50.0]])  # this rank: one image, sure of class 1
    pixelda.class_balance(logits, 0.5, running=running, decay=0.5)
    # Over both ranks' 4 images the mean is (3/4, 1/4).
    assert running.tolist() == pytest.approx([0.5 * 0.5 + 0.5 * 0.75, 0.5 * 0.5 + 0.5 * 0.25])


def test_running_class_balance_shares_are_the_teachers_state_and_move_in_the_d_step():
    _, plain, _, _ = tiny_pixelda(target_weight=1.0, target_balance=1.0)
    assert "predicted_shares" not in plain[pixelda.TEACHER].state_dict()
    cfg, m, opts, batch = tiny_pixelda(
        target_weight=1.0, target_balance=1.0, target_balance_decay=0.9
    )
    shares = m[pixelda.TEACHER].state_dict()["predicted_shares"]
    assert shares.tolist() == pytest.approx([0.1] * 10)
    pixelda.d_step(m, opts, batch, torch.zeros(4, 1, 16, 16), cfg)
    shares = m[pixelda.TEACHER].state_dict()["predicted_shares"]
    # Still a distribution, and moved towards the student's predictions.
    assert shares.sum().item() == pytest.approx(1.0) and shares.tolist() != [0.1] * 10


def test_random_shift_scale_keeps_the_shape_and_a_constant_image():
    torch.manual_seed(0)
    x = torch.full((8, 3, 16, 16), 0.25)
    y = pixelda.random_shift_scale(x)
    assert y.shape == x.shape
    assert torch.allclose(y, x)  # border padding: nothing new comes in
    z = torch.rand(8, 3, 16, 16)
    assert not torch.allclose(pixelda.random_shift_scale(z), z)


def test_d_step_moves_the_teacher_by_the_moving_average():
    cfg, m, opts, batch = tiny_pixelda(target_weight=1.0, teacher_decay=0.9)
    teacher = m[pixelda.TEACHER]
    assert all(not p.requires_grad for p in teacher.parameters())
    start = [p.detach().clone() for p in m["classifier"].parameters()]
    out = pixelda.d_step(m, opts, batch, torch.zeros(4, 1, 16, 16), cfg)
    assert "target_loss" in out
    # AveragedModel copies T at its first update, then averages: after one step the teacher
    # is T's new weights (the first update); after the second, 0.9 old + 0.1 new.
    first = [p.detach().clone() for p in m["classifier"].parameters()]
    assert all(torch.equal(a, b) for a, b in zip(teacher.module.parameters(), first))
    assert not all(torch.equal(a, b) for a, b in zip(start, first))
    pixelda.d_step(m, opts, batch, torch.zeros(4, 1, 16, 16), cfg)
    second = list(m["classifier"].parameters())
    expected = [0.9 * a + 0.1 * b for a, b in zip(first, second)]
    for got, want in zip(teacher.module.parameters(), expected):
        torch.testing.assert_close(got, want)


def test_target_images_reach_the_classifier_only_with_self_training():
    # With the teacher, T's update depends on the target batch; without it, it does not.
    for weight, depends in ((1.0, True), (0.0, False)):
        results = []
        for fill in (0.0, 1.0):
            cfg, m, opts, batch = tiny_pixelda(target_weight=weight, target_threshold=0.0)
            batch = dataclasses.replace(batch, x_tgt=torch.full_like(batch.x_tgt, fill))
            torch.manual_seed(1)
            pixelda.d_step(m, opts, batch, torch.zeros(4, 1, 16, 16), cfg)
            results.append([p.detach().clone() for p in m["classifier"].parameters()])
        same = all(torch.equal(a, b) for a, b in zip(*results))
        assert same != depends


def test_paper_preset_builds_no_teacher():
    cfg = resolve({"preset": "paper"})
    assert cfg.target_weight == 0 and not cfg.target_recolour
    assert resolve({}).target_recolour  # the fast preset's
    info = DataInfo(channels=1, image_size=16, num_outputs=10, classes=None)
    assert pixelda.TEACHER not in pixelda.build(cfg, info)


def test_regression_runs_get_no_teacher():
    # Pseudo-labels are classes: with regression targets self-training stays off.
    cfg = resolve({"task": "regression"})
    assert cfg.target_weight > 0  # the fast preset's value
    info = DataInfo(channels=1, image_size=16, num_outputs=2, classes=None)
    assert pixelda.TEACHER not in pixelda.build(cfg, info)


@pytest.mark.parametrize(
    "flag, value",
    [
        ("target_weight", -1.0),
        ("target_threshold", 1.0),
        ("teacher_decay", 1.0),
        ("target_balance", -1.0),
        ("target_balance_floor", 0.0),
        ("target_balance_floor", 1.5),
        ("target_balance_decay", 1.0),
        ("target_balance_decay", -0.1),
    ],
)
def test_bad_self_training_flags_name_the_flag(flag, value):
    with pytest.raises(UserError, match="--" + flag.replace("_", "-")):
        resolve({flag: value})


def signed_orders(x: torch.Tensor, y: torch.Tensor) -> list[tuple[tuple[int, ...], int]]:
    """For one image x, y (C, H, W): every (channel order, sign) with y == sign * x[order]."""
    orders = itertools.permutations(range(x.size(0)))
    return [(o, sign) for o in orders for sign in (1, -1) if torch.equal(y, sign * x[list(o)])]


def test_random_channels_reorders_and_negates_whole_colour_images_only():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 5, 5) * 2 - 1
    y = pixelda.random_channels(x)
    found = [signed_orders(a, b) for a, b in zip(x, y)]
    assert all(len(f) == 1 for f in found)  # each image: one order and one sign, nothing else
    assert len({f[0][0] for f in found}) == 6  # 64 images draw all 3! orders ...
    assert {f[0][1] for f in found} == {1, -1}  # ... and both signs
    gray = torch.rand(16, 1, 5, 5)  # one channel (USPS, MNIST): unchanged
    assert torch.equal(pixelda.random_channels(gray), gray)


@pytest.mark.parametrize("recolour", [False, True])
def test_only_the_students_target_images_are_recoloured(monkeypatch, recolour):
    seen = []

    def spy(x):
        seen.append(x.shape)
        return x

    monkeypatch.setattr(pixelda, "random_channels", spy)
    cfg, m, opts, batch = tiny_pixelda(target_weight=1.0, target_recolour=recolour)
    pixelda.d_step(m, opts, batch, torch.zeros(4, 1, 16, 16), cfg)
    assert seen == ([batch.x_tgt.shape] if recolour else [])


def test_class_thresholds_update_the_shares_then_lower_the_less_confident_classes():
    shares = torch.tensor([0.4, 0.3, 0.0])
    # Two confident 0s, one confident 1 and an unsure 2: this batch's shares (0.5, 0.25, 0).
    confidence, labels = torch.tensor([0.95, 0.99, 0.93, 0.6]), torch.tensor([0, 0, 1, 2])
    thresholds = pixelda.class_thresholds(shares, confidence, labels, 0.9)
    assert shares.tolist() == pytest.approx([0.99 * 0.4 + 0.005, 0.99 * 0.3 + 0.0025, 0.0])
    b = shares[1].item() / shares[0].item()  # class 1 against the most confident class, 0
    assert thresholds.tolist() == pytest.approx([0.9, 0.9 * b / (2 - b), 0.5])  # 2: the floor
    # A threshold already below the floor stays as it is.
    low = pixelda.class_thresholds(torch.tensor([1.0, 0.0]), confidence[:2], labels[:2], 0.3)
    assert low.tolist() == pytest.approx([0.3, 0.3])


def test_class_thresholds_let_in_a_seldom_confident_class_below_the_threshold():
    # The teacher is sure of class 0 on image 1 and 70 % sure of class 1 on image 2; it has so
    # far labeled only 0s confidently. The student's loss is log 2 on each image.
    teacher = FixedLogits(torch.tensor([[5.0, 0.0], [0.0, math.log(7 / 3)]]))
    teacher.register_buffer("confident_shares", torch.tensor([0.5, 0.0]))
    student, x = torch.zeros(2, 2), torch.zeros(2, 1, 4, 4)
    flags = {"target_threshold": 0.9, "target_balance": 0.0, "target_class_thresholds": False}
    alone = pixelda.self_training(teacher, x, student, resolve(flags))
    assert alone.item() == pytest.approx(math.log(2) / 2)  # image 1 only
    flags["target_class_thresholds"] = True  # class 1's threshold falls to the floor, 0.5
    both = pixelda.self_training(teacher, x, student, resolve(flags))
    assert both.item() == pytest.approx(math.log(2))
    assert teacher.confident_shares.tolist() == pytest.approx([0.5, 0.0])


def test_class_thresholds_shares_are_the_teachers_state_and_move_in_the_d_step():
    _, plain, _, _ = tiny_pixelda(target_weight=1.0, target_class_thresholds=False)
    assert "confident_shares" not in plain[pixelda.TEACHER].state_dict()
    cfg, m, opts, batch = tiny_pixelda(
        target_weight=1.0, target_class_thresholds=True, target_threshold=0.0
    )
    assert m[pixelda.TEACHER].state_dict()["confident_shares"].tolist() == [0.0] * 10
    pixelda.d_step(m, opts, batch, torch.zeros(4, 1, 16, 16), cfg)
    # Threshold 0: every target image is confident, so the shares grow by 0.01 in all.
    shares = m[pixelda.TEACHER].state_dict()["confident_shares"]
    assert shares.sum().item() == pytest.approx(0.01) and shares.min() >= 0


def test_class_thresholds_count_every_ranks_images(monkeypatch):
    # Under torchrun the shares move with the counts summed over the ranks: here a second rank
    # whose two images the teacher labels 1 confidently.
    other_rank = torch.tensor([0.0, 2.0, 2.0])  # its confident counts per class, its batch size
    monkeypatch.setattr(pixelda.distributed, "sum_all", lambda v: v.double() + other_rank)
    shares = torch.zeros(2)
    pixelda.class_thresholds(shares, torch.tensor([0.95, 0.5]), torch.tensor([0, 1]), 0.9)
    # Over both ranks' 4 images: one confident 0 and two confident 1s.
    assert shares.tolist() == pytest.approx([0.01 * 1 / 4, 0.01 * 2 / 4])


def test_evaluation_scores_the_student_on_the_target_splits_only():
    _, m, _, _ = tiny_pixelda(target_weight=1.0)
    images = torch.zeros(6, 1, 16, 16, dtype=torch.uint8)
    labeled = [ImageSet(images, torch.arange(6), name) for name in ("val", "test")]
    data = SimpleNamespace(target_val=labeled[0], target_test=None, source_test=labeled[1])
    scores = pixelda.evaluate(m, data)
    assert {"target_val_acc", "source_test_acc", "student_target_val_acc"} <= scores.keys()
    assert "student_source_test_acc" not in scores
