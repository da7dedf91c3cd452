"""DiffAugment (training/diffaugment.py) against references written out: each transform's shift, square or
colour change, and gradients through them all."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.training.diffaugment import color, cutout, diff_augment, parse_policy, translation


def test_translation_shifts_each_image_with_zero_fill():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 16) + 1  # strictly positive, so the zero fill is recognisable
    y = translation(x)
    for xi, yi in zip(x, y, strict=False):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(yi, _shift(xi, dy, dx))]
        assert len(matches) == 1


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference: move the image content by (dy, dx) pixels, zeros where nothing moves in."""
    padded = F.pad(img, (2, 2, 2, 2))
    return padded[:, 2 - dy:2 - dy + img.shape[1], 2 - dx:2 - dx + img.shape[2]]


def test_cutout_zeroes_one_square_of_half_the_size():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16) + 1
    y = cutout(x)
    for xi, yi in zip(x, y, strict=False):
        hole = (yi == 0).all(dim=0)
        assert torch.equal(yi[:, ~hole], xi[:, ~hole])  # the rest is untouched
        rows, cols = hole.any(dim=1).nonzero(), hole.any(dim=0).nonzero()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8
        assert hole.sum() == len(rows) * len(cols)  # a rectangle (a square clipped by the border)


def test_color_shifts_brightness_by_at_most_half():
    # On a flat grey image saturation and contrast have nothing to act on: only the brightness shift remains.
    torch.manual_seed(0)
    x = torch.full((64, 3, 4, 4), 0.2)
    shift = color(x) - x
    per_image = shift.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-6)
    assert per_image.min() >= -0.5 and per_image.max() < 0.5 and per_image[:, 0].std() > 0.2


def test_diffaugment_is_differentiable_and_policy_parsing():
    assert parse_policy("") == ()
    assert parse_policy("color, translation,cutout") == ("color", "translation", "cutout")
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    diff_augment(x, parse_policy("color,translation,cutout")).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
