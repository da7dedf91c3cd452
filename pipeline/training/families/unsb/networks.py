"""UNSB's networks (Kim et al. 2024, read from cyclomon/UNSB models/ncsn_networks.py): the time- and
noise-conditioned ResNet generator, which also runs the whole bridge from a photo when called on it alone,
the time-conditioned PatchGAN, and the energy network E (the same PatchGAN on two pairs of images).

Time enters as the step's index through a sinusoidal embedding and a two-layer MLP, added to a convolution's
output in every residual block (and every PatchGAN layer); the noise z (4 x ngf long, N(0, I)) passes a
PixelNorm and a four-layer mapping MLP and scales and shifts each residual block (an adaptive layer). Those
small MLPs and what they add run in float32 whatever autocast says: from the authors' initial weights
(Xavier-normal, gain 0.02) their outputs start near 1e-4 and below, where fp16 keeps few bits, and their
sum with a convolution's output would round them away.

Every network starts as the authors' init leaves it (train.init not given: xavier; biases zeroed, which also
zeroes the adaptive layer's (1, 0) bias their constructor sets, as their init_net runs after it).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ....config import TrainConfig
from ...nce import PatchHeads
from ...weights import init_weights
from .settings import STEM, UNSBSettings

AUTHORS_INIT = "xavier"  # train.init when not given: the authors' init_type default
MAPPING_LAYERS = 3  # the authors' --n_mlp: linear layers of the noise mapping after its first


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The transformer's sinusoidal embedding of integer steps `t` (N,): N x dim, float32 (an odd dim ends
    with a zero)."""
    half = dim // 2
    step = -math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * step)
    angles = t.float()[:, None] * freqs[None]
    return F.pad(torch.cat([angles.sin(), angles.cos()], dim=1), (0, dim % 2))


def _mlp(widths: Sequence[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return layers


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def fp32(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)` in float32 whatever autocast says (the embeddings' small values; see the module doc)."""
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.float())


class ConditionedBlock(nn.Module):
    """A residual block told the step (added after its first convolution) and the noise (scale and shift
    after its first norm)."""

    def __init__(self, dim: int, emb: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3))
        self.norm1 = nn.InstanceNorm2d(dim)
        self.time = nn.Linear(emb, dim)
        self.style = nn.Linear(emb, 2 * dim)
        self.rest = nn.Sequential(nn.ReLU(True), nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3),
                                  nn.InstanceNorm2d(dim))

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, z_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        h = self.norm1(h + fp32(self.time, t_emb)[..., None, None].to(h.dtype))
        gamma, beta = fp32(self.style, z_emb)[..., None, None].to(h.dtype).chunk(2, dim=1)
        return x + self.rest(gamma * h + beta)


class BridgeGenerator(nn.Module):
    """G(x_t, t, z): the prediction of the Monet at the bridge's end from its state at step t.

    Called on photos alone it runs the bridge (`sample`): `sampling_steps` steps (as trained unless set
    by `sample_with`), its noise drawn from its own generator seeded by `seed`, so that translating never
    moves the training RNG and generate is deterministic given its seed. Called with (t, z) it makes one
    prediction; with `layers` too, the encoder's features at those layers (PatchNCE)."""

    def __init__(self, ngf: int, n_blocks: int, steps: int, tau: float) -> None:
        super().__init__()
        self.ngf, self.steps, self.tau = ngf, steps, tau
        # indexed as CUT's generator: 0 the padded input, 4 and 7 the strided convolutions (settings.STEM)
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, 2 * ngf, 3, 2, 1), nn.InstanceNorm2d(2 * ngf), nn.ReLU(True),
            nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1), nn.InstanceNorm2d(4 * ngf), nn.ReLU(True))
        self.blocks = nn.ModuleList(ConditionedBlock(4 * ngf, 4 * ngf) for _ in range(n_blocks))
        self.head = nn.Sequential(
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(2 * ngf),
            nn.ReLU(True), nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, output_padding=1),
            nn.InstanceNorm2d(ngf), nn.ReLU(True), nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())
        self.time_mlp = nn.Sequential(*_mlp([ngf, 4 * ngf, 4 * ngf]))
        self.z_mlp = nn.Sequential(PixelNorm(), *_mlp([4 * ngf] * (MAPPING_LAYERS + 2)))
        self.sampling_steps, self.seed = steps, 0
        self._noise: torch.Generator | None = None

    @property
    def z_dim(self) -> int:
        return 4 * self.ngf

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, z: torch.Tensor | None = None,
                layers: Sequence[str] = ()) -> torch.Tensor | list[torch.Tensor]:
        if t is None:
            return self.sample(x, self.sampling_steps, self._generator(x.device))
        t_emb, z_emb = fp32(self.time_mlp, time_embedding(t, self.ngf)), fp32(self.z_mlp, z)
        wanted = set(layers)
        in_stem = {STEM[n] for n in wanted if n in STEM}
        feats, h = [], x
        for i, layer in enumerate(self.stem):
            h = layer(h)
            if i in in_stem:  # none is followed by an in-place layer: no copy needed
                feats.append(h)
        for k, block in enumerate(self.blocks, start=1):
            if layers and len(feats) == len(wanted):
                return feats
            h = block(h, t_emb, z_emb)
            if f"res{k}" in wanted:
                feats.append(h)
        return feats if layers else self.head(h)

    def feature_widths(self, layers: Sequence[str]) -> list[int]:
        """The channels of the features at `layers` (encoder order), from the architecture alone."""
        stem = {"input": 3, "down1": 2 * self.ngf, "down2": 4 * self.ngf}
        return [stem.get(n, 4 * self.ngf) for n in layers]

    # -- the bridge -----------------------------------------------------------------------------------------
    def noise(self, n: int, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z for `n` images: N(0, I), 4 x ngf long, float32."""
        return torch.randn(n, self.z_dim, device=like.device, generator=generator)

    def sample(self, x: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The Monet predicted after `steps` steps of the bridge from photos `x` (the paper's NFE): the
        prediction of step k - 1 from the state of step k - 1, as the authors' test writes fake_k."""
        xt = x
        for i in range(steps):
            t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
            x1 = self(xt, t, self.noise(x.shape[0], x, generator))
            if i + 1 < steps:
                xt = bridge_step(xt, x1, i, self.steps, self.tau,
                                 torch.randn(xt.shape, device=x.device, generator=generator, dtype=xt.dtype))
        return x1

    def sample_with(self, steps: int, seed: int) -> BridgeGenerator:
        """Translate with `steps` steps (0: as trained) and noise from `seed`, from now on (generate)."""
        self.sampling_steps, self.seed, self._noise = steps or self.steps, seed, None
        return self

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._noise is None or self._noise.device != device:
            self._noise = torch.Generator(device=device).manual_seed(self.seed)
        return self._noise


def schedule(steps: int) -> list[float]:
    """The bridge's times t_0 = 0 < t_1 < ... < t_steps = 1, as the authors space them: t_1 = 1/2, then
    steps shrinking as 1, 1/2, 1/3, ... scaled into (1/2, 1]."""
    incs = [0.0] + [1 / (i + 1) for i in range(steps - 1)]
    cum = [sum(incs[: i + 1]) for i in range(steps)]
    return [0.0] + ([0.5 + 0.5 * c / cum[-1] for c in cum] if steps > 1 else [1.0])


def bridge_step(xt: torch.Tensor, x1: torch.Tensor, i: int, steps: int, tau: float,
                noise: torch.Tensor) -> torch.Tensor:
    """x_{t_(i+1)} from x_{t_i} and the prediction x1 of the end: the Brownian bridge between them,
    N(s x1 + (1 - s) x_{t_i}, s (1 - s) tau (1 - t_i) I) with s = (t_(i+1) - t_i) / (1 - t_i)."""
    times = schedule(steps)
    s = (times[i + 1] - times[i]) / (1 - times[i])
    var = s * (1 - s) * tau * (1 - times[i])
    return (1 - s) * xt + s * x1 + math.sqrt(var) * noise


class TimePatchGAN(nn.Module):
    """The PatchGAN told the step: its 4 x ndf-long time embedding (sinusoid + two-layer MLP) added after
    every convolution but the last, through a linear layer of its own."""

    def __init__(self, in_channels: int, ndf: int, d_layers: int) -> None:
        super().__init__()
        widths = [in_channels] + [ndf * min(2**n, 8) for n in range(d_layers + 1)]
        self.ndf = ndf
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, 2 if n < d_layers else 1, 1)
                                   for n, (a, b) in enumerate(zip(widths, widths[1:], strict=False)))
        self.times = nn.ModuleList(nn.Linear(4 * ndf, b) for b in widths[1:])
        self.norms = nn.ModuleList([nn.Identity()] + [nn.InstanceNorm2d(b) for b in widths[2:]])
        self.last = nn.Conv2d(widths[-1], 1, 4, 1, 1)
        self.time_mlp = nn.Sequential(*_mlp([4 * ndf] * 3))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_emb = fp32(self.time_mlp, time_embedding(t, 4 * self.ndf))
        for conv, time, norm in zip(self.convs, self.times, self.norms, strict=True):
            h = conv(x)
            x = F.leaky_relu(norm(h + fp32(time, t_emb)[..., None, None].to(h.dtype)), 0.2)
        return self.last(x)


class Critics(nn.Module):
    """The PatchGAN D and the energy network E, one module so that one DDP forward serves both updates (one
    optimiser, "D", steps them; their parameters are apart, so Adam's steps are those of two)."""

    def __init__(self, ndf: int, d_layers: int) -> None:
        super().__init__()
        self.patch = TimePatchGAN(3, ndf, d_layers)
        self.energy = TimePatchGAN(12, ndf, d_layers)  # (x_t, x_1) of one pair beside another's

    def forward(self, t: torch.Tensor, images: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
        n_img, n_pair = images.shape[0] // t.shape[0], pairs.shape[0] // t.shape[0]
        return self.patch(images, t.repeat(n_img)), self.energy(pairs, t.repeat(n_pair))


def make_generator(train: TrainConfig, s: UNSBSettings) -> nn.Module:
    """Photo -> Monet through the bridge, from a checkpoint's or the current settings."""
    return init_weights(BridgeGenerator(s.ngf, s.n_blocks, s.steps, s.tau), train.init or AUTHORS_INIT)


def make_critics(train: TrainConfig, s: UNSBSettings) -> nn.Module:
    return init_weights(Critics(s.ndf, s.d_layers), train.init or AUTHORS_INIT)


def make_heads(generator: BridgeGenerator, train: TrainConfig, s: UNSBSettings) -> PatchHeads:
    heads = PatchHeads(generator.feature_widths(s.layers), s.mlp_width)
    return init_weights(heads, train.init or AUTHORS_INIT)
