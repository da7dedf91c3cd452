"""The networks of each model family, built from TrainConfig so that a checkpoint's saved settings rebuild them."""
from __future__ import annotations

from torch import nn

from ...config import TrainConfig
from .cyclegan import PatchDiscriminator, ResnetGenerator, UnetGenerator, unet_depth
from .dcgan import DCDiscriminator, DCGenerator


def make_generator(t: TrainConfig) -> nn.Module:
    """CycleGAN: photo -> Monet (the same class serves Monet -> photo); DCGAN: noise -> Monet."""
    if t.model == "dcgan":
        return init_weights(DCGenerator(t.z_dim, t.dcgan_width, t.image_size))
    if t.generator == "unet":
        return init_weights(UnetGenerator(t.ngf, unet_depth(t.image_size)))
    return init_weights(ResnetGenerator(t.ngf, t.n_blocks))


def make_discriminator(t: TrainConfig) -> nn.Module:
    if t.model == "dcgan":
        return init_weights(DCDiscriminator(t.dcgan_width, t.image_size, t.spectral_norm, t.d_dropout,
                                            batch_norm=_d_batch_norm(t)))
    return init_weights(PatchDiscriminator(t.ndf, t.d_layers))


def architecture(t: TrainConfig) -> dict:
    """The settings that decide the networks' shapes: a checkpoint made with others cannot be resumed."""
    if t.model == "dcgan":
        return {"model": "dcgan", "z_dim": t.z_dim, "dcgan_width": t.dcgan_width, "image_size": t.image_size,
                "spectral_norm": t.spectral_norm, "d_batch_norm": _d_batch_norm(t)}
    depth = {"image_size": t.image_size} if t.generator == "unet" else {"n_blocks": t.n_blocks}
    return {"model": "cyclegan", "generator": t.generator, "ngf": t.ngf, **depth, "ndf": t.ndf,
            "d_layers": t.d_layers}


def _d_batch_norm(t: TrainConfig) -> bool:
    return not t.spectral_norm and t.loss != "wgan-gp"


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """N(0, 0.02) for convolutions, N(1, 0.02) for norm scales, zero biases (DCGAN and CycleGAN papers)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net
