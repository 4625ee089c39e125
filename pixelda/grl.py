"""Gradient reversal (Ganin et al. 2016): identity forward, gradient times -lambda backward.

It lets one optimizer step train a domain classifier to tell the domains apart while pushing
the features it reads to make that impossible.
"""

import math

import torch
from torch import nn


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)  # a view, not x itself, so autograd records this node

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None  # no gradient for the coefficient


def grad_reverse(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """x unchanged (any shape); in the backward pass its gradient becomes -coeff * grad."""
    return _GradReverse.apply(x, float(coeff))


class GradientReversal(nn.Module):
    """grad_reverse as a module; set `.coeff` between steps to follow a schedule."""

    def __init__(self, *, coeff: float = 1.0):
        super().__init__()
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"


def dann_lambda(progress: float, *, gamma: float = 10.0) -> float:
    """lambda_p = 2 / (1 + exp(-gamma * p)) - 1 for training progress p in [0, 1] -> [0, 1).

    Ganin et al. 2016, Sec. 5.2.2 (gamma = 10): 0 at the start, so the domain classifier's
    early, noisy gradients do not disturb the features, rising towards 1."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0
