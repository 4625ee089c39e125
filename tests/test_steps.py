"""The PixelDA D-step and G-step touch only their own models."""

import pytest
import torch

from pixelda.helpers import uniform_noise
from pixelda.methods import pixelda

from .conftest import same_state, state_of, tiny_pixelda


@pytest.fixture
def setup():
    return tiny_pixelda(channels=3, content_weight=1.0)


def test_d_step_leaves_generator_untouched(setup):
    cfg, m, opts, batch = setup
    g_before, d_before = state_of(m["generator"]), state_of(m["discriminator"])
    t_before = state_of(m["classifier"])
    x_fake = m["generator"](batch.x_src, uniform_noise((4, cfg.latent_dim)))
    g_after_forward = state_of(m["generator"])  # the forward pass updates G's BN statistics
    pixelda.d_step(m, opts, batch, x_fake.detach(), cfg)
    assert same_state(g_after_forward, state_of(m["generator"]))
    assert not same_state(g_before, g_after_forward)
    assert not same_state(d_before, state_of(m["discriminator"]))
    assert not same_state(t_before, state_of(m["classifier"]))


def test_g_step_leaves_discriminator_and_classifier_untouched(setup):
    cfg, m, opts, batch = setup
    x_fake = m["generator"](batch.x_src, uniform_noise((4, cfg.latent_dim)))
    d_before, t_before = state_of(m["discriminator"]), state_of(m["classifier"])
    g_before = state_of(m["generator"])
    out = pixelda.g_step(m, opts, batch, x_fake, cfg)
    assert same_state(d_before, state_of(m["discriminator"]))  # weights and BN running statistics
    assert same_state(t_before, state_of(m["classifier"]))
    assert not same_state(g_before, state_of(m["generator"]))
    trained = [m[name] for name in m if name != pixelda.TEACHER]  # the teacher has no gradients
    assert all(p.requires_grad for net in trained for p in net.parameters())
    assert out["content_loss"] > 0


def test_full_step_changes_everything_and_reports_finite_losses(setup):
    cfg, m, opts, batch = setup
    before = state_of(m)
    out = pixelda.train_step(m, opts, batch, cfg, 0.0)
    # The fast preset's semantic consistency adds its loss and its judge's, self-training its own.
    assert set(out) == {
        "target_loss",
        "d_loss",
        "task_loss",
        "g_loss",
        "style_loss",
        "content_loss",
        "consistency_loss",
        "judge_loss",
    }
    assert all(torch.isfinite(v) for v in out.values())
    assert not same_state(before, state_of(m))
