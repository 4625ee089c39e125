"""Semantic consistency (--consistency-weight): the loss by hand, and a G-step that uses it
moves G only."""

import math

import pytest
import torch

from pixelda import losses
from pixelda.config import resolve
from pixelda.errors import UserError
from pixelda.helpers import uniform_noise
from pixelda.methods import DataInfo, pixelda

from .conftest import same_state, state_of, tiny_pixelda


def test_semantic_consistency_matches_hand_computed_value():
    # The judge's classes on the sources: argmax [2, 0] -> 0, argmax [0, 1] -> 1.
    src_logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    fake_logits = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    # -log softmax: row 1 at class 0 is log 2; row 2 at class 1 is log(1 + e).
    expected = (math.log(2.0) + math.log(1.0 + math.e)) / 2
    assert losses.semantic_consistency(fake_logits, src_logits).item() == pytest.approx(expected)


def test_changed_factor_weighs_only_the_images_whose_class_the_judge_reads_as_changed():
    # Sources read as 0 and 1; the first adapted image is read as 1 (changed), the second as 1.
    src_logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    fake_logits = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    changed = math.log(1.0 + math.e)  # -log softmax([0, 1])[0]
    kept = math.log(1.0 + math.exp(-2.0))  # -log softmax([0, 2])[1]
    got = losses.semantic_consistency(fake_logits, src_logits, changed_factor=10.0)
    assert got.item() == pytest.approx((10.0 * changed + kept) / 2)
    plain = losses.semantic_consistency(fake_logits, src_logits)
    assert plain.item() == pytest.approx((changed + kept) / 2)


def test_changed_confidence_counts_only_the_images_the_judge_reads_as_another_class_surely():
    # Both sources read as 0; both adapted images read as 1, the first with probability
    # e / (1 + e) ~ 0.73, the second with e^3 / (1 + e^3) ~ 0.95.
    src_logits = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    fake_logits = torch.tensor([[0.0, 1.0], [0.0, 3.0]])
    unsure, sure = math.log(1.0 + math.e), math.log(1.0 + math.exp(3.0))
    got = losses.semantic_consistency(
        fake_logits, src_logits, changed_factor=10.0, changed_confidence=0.9
    )
    assert got.item() == pytest.approx((unsure + 10.0 * sure) / 2)
    got = losses.semantic_consistency(
        fake_logits, src_logits, changed_factor=10.0, changed_confidence=0.5
    )
    assert got.item() == pytest.approx(10.0 * (unsure + sure) / 2)


def test_semantic_consistency_sends_no_gradient_to_the_source_logits():
    src_logits = torch.randn(4, 3, requires_grad=True)
    fake_logits = torch.randn(4, 3, requires_grad=True)
    losses.semantic_consistency(fake_logits, src_logits).backward()
    assert src_logits.grad is None
    assert fake_logits.grad is not None


def _setup(judge: str):
    return tiny_pixelda(consistency_weight=1.0, consistency_judge=judge)


@pytest.mark.parametrize("judge", ["source", "recoloured", "task"])
def test_g_step_with_consistency_moves_only_the_generator(judge):
    cfg, m, opts, batch = _setup(judge)
    assert (pixelda.SOURCE_JUDGE in m) == (judge != "task")
    others = [name for name in m if name != "generator"]
    x_fake = m["generator"](batch.x_src, uniform_noise((4, cfg.latent_dim)))
    before = {name: state_of(m[name]) for name in m}
    out = pixelda.g_step(m, opts, batch, x_fake, cfg)
    assert out["consistency_loss"] > 0
    assert all(same_state(before[name], state_of(m[name])) for name in others)
    assert not same_state(before["generator"], state_of(m["generator"]))
    # frozen() gave every trained model its gradients back (the teacher never has any)
    trained = [m[name] for name in m if name != pixelda.TEACHER]
    assert all(p.requires_grad for net in trained for p in net.parameters())


@pytest.mark.parametrize("judge", ["source", "recoloured"])
def test_source_judge_learns_from_source_images_only_in_the_d_step(judge):
    cfg, m, opts, batch = _setup(judge)
    start = state_of(m[pixelda.SOURCE_JUDGE])
    pixelda.d_step(m, opts, batch, torch.ones(4, 1, 16, 16), cfg)
    moved = state_of(m[pixelda.SOURCE_JUDGE])
    assert not same_state(start, moved)
    # Same batch and starting weights, other adapted images: the judge moves the same way.
    cfg, m, opts, batch = _setup(judge)
    pixelda.d_step(m, opts, batch, torch.zeros(4, 1, 16, 16), cfg)
    assert same_state(moved, state_of(m[pixelda.SOURCE_JUDGE]))


def test_paper_preset_builds_no_judge():
    cfg = resolve({"preset": "paper"})
    info = DataInfo(channels=1, image_size=16, num_outputs=10, classes=None)
    m = pixelda.build(cfg, info)
    assert set(m) == {"generator", "discriminator", "classifier"}
    assert set(pixelda.optimizers(m, cfg)) == {"d", "g"}


def test_random_zoom_by_one_is_the_identity_and_otherwise_enlarges():
    x = torch.full((2, 1, 8, 8), -1.0)
    x[..., 2:6, 2:6] = 1.0  # a 4x4 square in an 8x8 frame
    assert torch.allclose(pixelda.random_zoom(x, 1.0), x)
    zoomed = pixelda.random_zoom(x, 2.0)
    assert zoomed.shape == x.shape
    # Zooming in only: the square grows, never shrinks.
    assert ((zoomed > 0).sum((1, 2, 3)) >= 16).all()


def test_random_colours_keep_the_range_and_a_contrast_of_at_least_half():
    torch.manual_seed(0)
    background = pixelda.random_colours(torch.full((500, 3, 1, 1), -1.0))
    torch.manual_seed(0)
    foreground = pixelda.random_colours(torch.ones(500, 3, 1, 1))
    for y in (background, foreground):
        assert y.min() >= -1 and y.max() <= 1
    contrast = (foreground - background).abs()
    assert contrast.min() >= 0.5 and contrast.max() <= 2
    assert (foreground < background).any() and (foreground > background).any()  # both ways


def test_fast_preset_turns_on_the_recoloured_judge_and_the_paper_preset_does_not():
    fast, paper = resolve({}), resolve({"preset": "paper"})
    assert (fast.consistency_weight, fast.consistency_judge) == (0.1, "recoloured")
    assert (fast.consistency_changed_factor, fast.consistency_changed_confidence) == (10.0, 0.9)
    assert (paper.consistency_weight, paper.adapted_zoom) == (0.0, 1.0)
    assert paper.consistency_changed_factor == 1.0


@pytest.mark.parametrize(
    "flag, value",
    [
        ("consistency_changed_factor", 0.5),
        ("consistency_changed_confidence", 1.0),
        ("consistency_changed_confidence", -0.1),
    ],
)
def test_bad_changed_image_flags_name_the_flag(flag, value):
    with pytest.raises(UserError, match="--" + flag.replace("_", "-")):
        resolve({flag: value})
