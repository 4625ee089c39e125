import math

import pytest
import torch

from pixelda.grl import GradientReversal, dann_lambda, grad_reverse


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_forward_is_identity_and_backward_is_minus_coeff_times_grad(coeff):
    torch.manual_seed(0)
    x = torch.randn(4, 5, requires_grad=True)
    y = grad_reverse(x, coeff)
    assert torch.equal(y, x)
    upstream = torch.randn(4, 5)
    y.backward(upstream)
    assert torch.equal(x.grad, -coeff * upstream)


def test_reversal_inside_a_graph_by_hand():
    # loss = sum(w * GRL(a * x)); d loss / d x = -coeff * w * a, d loss / d w = a * x
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 1.5, -1.0], requires_grad=True)
    (w * GradientReversal(coeff=0.25)(2.0 * x)).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.25, -0.75, 0.5]))
    assert torch.allclose(w.grad, torch.tensor([2.0, -4.0, 6.0]))


def test_gradient_is_the_true_gradient_times_minus_coeff_in_a_nonlinear_graph():
    torch.manual_seed(0)
    x = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    head = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    head = head.double()
    (true_grad,) = torch.autograd.grad(head(x.sin()).sum(), x)
    (reversed_grad,) = torch.autograd.grad(head(grad_reverse(x.sin(), 0.7)).sum(), x)
    assert torch.allclose(reversed_grad, -0.7 * true_grad, atol=1e-12)
    assert not torch.allclose(true_grad, torch.zeros_like(true_grad))


def test_module_coefficient_can_change_between_steps():
    grl = GradientReversal(coeff=0.0)
    x = torch.ones(2, requires_grad=True)
    grl(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros(2))
    grl.coeff = 3.0
    x.grad = None
    grl(x).sum().backward()
    assert torch.equal(x.grad, torch.full((2,), -3.0))


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.0, 0.0),
        (0.5, 2 / (1 + math.exp(-5)) - 1),  # 0.98661...
        (1.0, 2 / (1 + math.exp(-10)) - 1),  # 0.99990...
    ],
)
def test_lambda_schedule_by_hand(p, expected):
    assert dann_lambda(p) == pytest.approx(expected, abs=1e-12)


def test_lambda_schedule_hand_values_and_shape():
    assert dann_lambda(0.5) == pytest.approx(0.9866142981514305, abs=1e-12)
    assert dann_lambda(1.0) == pytest.approx(0.9999092042625951, abs=1e-12)
    assert dann_lambda(0.1) == pytest.approx(0.46211715726000974, abs=1e-12)  # tanh(0.5)
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values) and 0.0 <= values[0] and values[-1] < 1.0


@pytest.mark.parametrize("p", [0.0, 0.25, 1.0])
def test_reversal_with_the_scheduled_lambda_is_minus_lambda_times_the_incoming_gradient(p):
    # lambda_0.25 = 2 / (1 + e^-2.5) - 1 = tanh(1.25) = 0.8482836399575129
    lam = dann_lambda(p)
    if p == 0.25:
        assert lam == pytest.approx(0.8482836399575129, abs=1e-12)
    x = torch.tensor([[1.0, -2.0], [0.5, 4.0]], requires_grad=True)
    incoming = torch.tensor([[0.3, -1.0], [2.0, 0.25]])
    grad_reverse(x, lam).backward(incoming)
    assert torch.allclose(x.grad, -lam * incoming, atol=0, rtol=1e-6)
