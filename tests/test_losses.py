"""The losses (training/losses.py) against their closed-form values: LSGAN, BCE with smoothed real labels,
WGAN with its gradient penalty, L1 reconstruction."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.training.losses import AdversarialLoss, gradient_penalty, reconstruction_loss


def test_lsgan_loss_matches_the_least_squares_formula():
    real, fake = torch.randn(4, 1, 6, 6), torch.randn(4, 1, 6, 6)
    adv = AdversarialLoss("lsgan")
    assert adv.d_loss(real, fake).item() == pytest.approx(
        0.5 * (((real - 1) ** 2).mean() + (fake**2).mean()).item(), rel=1e-6)
    assert adv.g_loss(fake).item() == pytest.approx(((fake - 1) ** 2).mean().item(), rel=1e-6)


def test_bce_smooths_real_labels_only():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    adv = AdversarialLoss("bce", real_label=0.9)

    def bce(logit: float, target: float) -> float:
        p = 1 / (1 + math.exp(-logit))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    expected_d = 0.5 * ((bce(2.0, 0.9) + bce(-1.0, 0.9)) / 2 + (bce(0.5, 0) + bce(-3.0, 0)) / 2)
    assert adv.d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert adv.g_loss(fake).item() == pytest.approx((bce(0.5, 1) + bce(-3.0, 1)) / 2, rel=1e-6)


def test_wgan_loss_and_gradient_penalty_of_a_linear_critic():
    real, fake = torch.randn(5, 1), torch.randn(5, 1)
    adv = AdversarialLoss("wgan-gp")
    assert adv.d_loss(real, fake).item() == pytest.approx((fake.mean() - real.mean()).item(), rel=1e-6)
    assert adv.g_loss(fake).item() == pytest.approx(-fake.mean().item(), rel=1e-6)
    w = torch.randn(3, 4, 4)  # critic(x) = <w, x>: its gradient is w everywhere, so GP = (|w| - 1)^2

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    gp = gradient_penalty(critic, torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4))
    assert gp.item() == pytest.approx(((w.norm() - 1) ** 2).item(), rel=1e-5)


def test_reconstruction_loss_is_l1():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert reconstruction_loss(a, b).item() == pytest.approx((a - b).abs().mean().item(), rel=1e-6)
