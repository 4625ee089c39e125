import math

import pytest
import torch
import torch.nn.functional as F

from pixelda import losses


def test_gan_losses_at_zero_logits_are_log2():
    zero = torch.zeros(3)
    assert losses.d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.g_loss(zero).item() == pytest.approx(math.log(2))


def test_gan_losses_hand_values():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 3.0])
    sig = torch.sigmoid
    expected_d = (-torch.log(sig(real)).mean() - torch.log(1 - sig(fake)).mean()).item()
    assert losses.d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    # non-saturating: -log D(G(z)), not log(1 - D(G(z)))
    assert losses.g_loss(fake).item() == pytest.approx(-torch.log(sig(fake)).mean().item())


def test_task_loss_is_cross_entropy_on_logits_and_mse_for_regression():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
    assert losses.task_loss(logits, torch.tensor([0])).item() == pytest.approx(expected)
    out, target = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert losses.task_loss(out, target).item() == pytest.approx(2.5)


def test_pmse_hand_value():
    x_src = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # (1, 1, 2, 2)
    x_fake = torch.zeros_like(x_src)
    # d = [1, 0, 0, 0], k = 4: 1/4 - 1/16
    assert losses.masked_pmse(x_fake, x_src).item() == pytest.approx(3 / 16)


def test_pmse_ignores_a_uniform_shift_but_not_a_pattern():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 4)
    assert losses.masked_pmse(x + 0.7, x).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.masked_pmse(x.flip(-1), x).item() > 1e-3


def test_pmse_mask_ignores_background_and_averages_over_batch():
    x_src = torch.zeros(2, 1, 2, 2)
    x_fake = torch.tensor([[[[5.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 1.0]]]])
    mask = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    # sample 0: the difference is masked out -> 0; sample 1: d = [0,0,0,-1] -> 3/16
    assert losses.masked_pmse(x_fake, x_src, mask).item() == pytest.approx(3 / 32)
    unmasked = (25 / 4 - 25 / 16 + 3 / 16) / 2
    assert losses.masked_pmse(x_fake, x_src).item() == pytest.approx(unmasked)


def test_pmse_matches_pairwise_definition():
    torch.manual_seed(1)
    a, b = torch.rand(3, 1, 3, 3), torch.rand(3, 1, 3, 3)
    d = (b - a).flatten(1)
    k = d.size(1)
    # mean over pairs (i, j) of ((d_i - d_j)^2) / 2 equals ||d||^2/k - (sum d)^2/k^2
    pairwise = ((d[:, :, None] - d[:, None, :]) ** 2).sum((1, 2)) / (2 * k**2)
    assert losses.masked_pmse(a, b).item() == pytest.approx(pairwise.mean().item(), rel=1e-5)
    assert F.mse_loss(a, b).item() != pytest.approx(losses.masked_pmse(a, b).item())
