"""The networks (training/networks.py and the families' own) against independent references: published
sizes, receptive fields, the range of what they make, spectral norm, dropout, the initial weights."""
from __future__ import annotations

import pytest
import torch

from pipeline.config import TrainConfig
from pipeline.training.families.cyclegan import networks as cyclegan_networks
from pipeline.training.families.dcgan import networks as dcgan_networks
from pipeline.training.family import get_family
from pipeline.training.networks import PatchDiscriminator, UnetGenerator, unet_depth


def make_generator(t: TrainConfig, **settings) -> torch.nn.Module:
    """The generator of t.model's family with these settings, built as generate and the loop build it."""
    family = get_family(t.model)
    return family.build_generator(t, family.settings(**settings))


def make_discriminator(t: TrainConfig, **settings) -> torch.nn.Module:
    networks = {"cyclegan": cyclegan_networks, "dcgan": dcgan_networks}[t.model]
    return networks.make_discriminator(t, get_family(t.model).settings(**settings))


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_resnet_generator_matches_the_papers_size():
    # The CycleGAN ResNet-9 generator with 64 filters has 11.378M parameters (junyanz/pytorch-CycleGAN-and-
    # pix2pix
    # prints "Total number of parameters : 11.378 M"); the PatchGAN discriminator 2.765M.
    t = TrainConfig()
    assert n_params(make_generator(t)) == 11_378_179
    assert round(n_params(make_discriminator(t)) / 1e6, 3) == 2.765


@pytest.mark.parametrize("generator", ["resnet", "unet"])
@pytest.mark.parametrize("size", [32, 40])  # 40: not a multiple of the U-Net's 2**depth
def test_generators_keep_the_image_size_and_range(generator, size):
    g = make_generator(TrainConfig(image_size=32), generator=generator, ngf=4, n_blocks=1)
    y = g(torch.randn(2, 3, size, size) * 3)
    assert y.shape == (2, 3, size, size)
    assert y.abs().max() <= 1.0


def test_unet_depth_follows_the_training_size_and_reaches_1x1():
    assert unet_depth(256) == 8 and unet_depth(64) == 6 and unet_depth(32) == 5
    g = UnetGenerator(ngf=4, depth=unet_depth(32))
    bottleneck = torch.randn(1, 3, 32, 32)
    for layer in g.down:
        bottleneck = layer(bottleneck)
    assert bottleneck.shape[-2:] == (1, 1)
    # trained on crops, applied to whole photos
    assert g(torch.randn(1, 3, 256, 256)).shape == (1, 3, 256, 256)


def test_patchgan_sees_70x70_patches():
    d = PatchDiscriminator(ndf=4, d_layers=3)
    # Instance norm mixes in statistics of the whole image; without it each logit sees only its patch.
    d.model = torch.nn.Sequential(*[torch.nn.Identity() if isinstance(m, torch.nn.InstanceNorm2d) else m
                                    for m in d.model])
    for p in d.parameters():  # positive weights so no gradient cancels to exactly zero
        torch.nn.init.uniform_(p, 0.01, 0.02)
    d = d.double()
    x = torch.zeros(1, 3, 160, 160, dtype=torch.double, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70
    assert int(cols.max() - cols.min() + 1) == 70


@pytest.mark.parametrize("size", [32, 64])
def test_dcgan_maps_noise_to_images_and_images_to_logits(size):
    t = TrainConfig(model="dcgan", image_size=size)
    g, d = make_generator(t, z_dim=16, width=8), make_discriminator(t, z_dim=16, width=8)
    images = g(torch.randn(3, 16))
    assert images.shape == (3, 3, size, size) and images.abs().max() <= 1.0
    logits = d(images)
    assert logits.shape == (3, 1)
    assert not isinstance(d.model[-1], torch.nn.Sigmoid)


def test_spectral_norm_bounds_each_discriminator_layer():
    d = make_discriminator(TrainConfig(model="dcgan", image_size=32), width=8, spectral_norm=True)
    for _ in range(30):  # power iteration converges during forward passes in train mode
        d(torch.randn(4, 3, 32, 32))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_discriminator_dropout_is_active_in_training_only():
    d = make_discriminator(TrainConfig(model="dcgan", image_size=32), width=8, d_dropout=0.5)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.equal(d(x), d(x))
    d.eval()
    assert torch.equal(d(x), d(x))


def test_weights_start_from_n_0_002():
    g = make_generator(TrainConfig(), ngf=32, n_blocks=2)
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert weights.mean().item() == pytest.approx(0.0, abs=2e-3)
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
