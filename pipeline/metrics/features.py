"""Inception pool_3 features (2048-d) exactly as pytorch-fid computes them, only faster.

The network is pytorch-fid's FID Inception (the port of the 2015-12-05 TensorFlow graph that Kaggle's
MiFID uses), built from its parts as `pytorch_fid.inception.fid_inception_v3` builds it and given the
weights file we name (pytorch-fid itself can only fetch its URL), cut at pool_3 as its `InceptionV3([3])`
is; the input handling is pytorch-fid's: PIL decode to RGB, scale to [0, 1] as `ToTensor` does, then the
network's bilinear resize to 299 and rescale to [-1, 1]. What
differs is only throughput: JPEG decoding runs in worker threads a few batches ahead of the model,
the model runs in inference mode, channels_last, with its batch norms folded into the convolutions
(fused_inception.py; optional fp16 on CUDA), features are cached per image by content (feature_cache.py),
and images can come from a folder, a zip, or tensors already in memory (the training loop and the
generate stage). On a 2-core CPU: channels_last 1.6x, the folding 1.2x; bf16 (native on some CPUs)
moved the FID by 1e-3, so it is not used.

pytorch-fid is imported only where the network is built or downloaded: Kaggle's image lacks it, and
a notebook that never scores must not need it (the kernel carries a copy for those that do). This module
works on paths, arrays and tensors and knows no settings (the callers pass what [score] asks for).
"""
from __future__ import annotations

import contextlib
import functools
import os
import pickle
import socket
import zipfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..engine.errors import StageSkipped, UserError
from ..engine.fingerprint import sha256_file
from ..engine.progress import progress as progress_bar
from ..images import JPEG_SUFFIXES, decode_rgb, list_images
from .feature_cache import FeatureCache, content_keys
from .fused_inception import fuse_conv_bn_relu

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # the file name in pytorch-fid's FID_WEIGHTS_URL
DIMS = 2048
PREFETCH = 2  # decoded batches kept ready ahead of the model
DOWNLOAD_TIMEOUT_S = 30


def hub_weights_path() -> Path:
    """Where torch hub (and so pytorch-fid) keeps the FID weights once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def find_weights(setting: str) -> Path:
    """The FID weights: score.weights if set, else the torch hub cache, else downloaded there.

    Offline with no file this is a StageSkipped (scoring is optional), not a failure.
    """
    if setting:
        path = Path(setting).expanduser()
        if not path.is_file():
            raise UserError(f"score.weights={setting}: file not found; point it at {WEIGHTS_FILE}")
        return path
    path = hub_weights_path()
    if path.is_file():
        return path
    timeout = socket.getdefaulttimeout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a firewall that drops packets must not hang `make demo`
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        from pytorch_fid.inception import FID_WEIGHTS_URL

        # pytorch-fid's URL and hub location, unchecked as pytorch-fid leaves it (a bad file fails at load).
        torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(path), progress=True)
    except (OSError, RuntimeError) as exc:  # offline: URLError is an OSError
        reason = " ".join(str(exc).split())[:120]
        raise StageSkipped(f"the FID Inception weights {WEIGHTS_FILE} are not here and could not be "
                           f"downloaded ({reason}); put the file at {path} "
                           "or pass --set score.weights=PATH") from None
    finally:
        socket.setdefaulttimeout(timeout)
    return path


def fid_inception() -> nn.Module:
    """pytorch-fid's FID Inception with untrained weights: torchvision's Inception3 (1008 classes, no
    auxiliary head) with the blocks the 2015 TensorFlow graph has in other shapes replaced by pytorch-fid's,
    exactly as `pytorch_fid.inception.fid_inception_v3` builds it before it loads its URL's weights."""
    import torchvision
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False,
                                          init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class Pool3(nn.Module):
    """The FID Inception up to its pool_3 features, as pytorch-fid's `InceptionV3([3])` cuts it: images in
    [0, 1] resized to 299 x 299 (bilinear) and scaled to [-1, 1], then its four blocks; returns
    [N x 2048 x 1 x 1] (a list, as pytorch-fid's network does: its `get_activations` takes this one too)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(3, stride=2)),
            nn.Sequential(net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(3, stride=2)),
            nn.Sequential(net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
                          net.Mixed_6d, net.Mixed_6e),
            nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d((1, 1)))])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
        for block in self.blocks:
            x = block(x)
        return [x]


def load_inception(weights: Path) -> nn.Module:
    """The FID Inception's pool_3 network with the weights read from `weights` (every key checked), in eval
    mode; a file that is not those weights is a UserError naming it."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net = fid_inception()
        net.load_state_dict(state)
    except (RuntimeError, OSError, ValueError, AttributeError, TypeError, EOFError,
            pickle.UnpicklingError) as exc:
        first = " ".join(str(exc).split())[:120]
        raise UserError(f"{weights}: not the FID Inception weights {WEIGHTS_FILE} ({first})") from None
    return Pool3(net).requires_grad_(False).eval()


@dataclass(frozen=True)
class ImageSet:
    """The JPEGs of a folder or a zip file, by name; `read` is safe to call from worker threads."""

    path: Path
    names: tuple[str, ...]
    archive: zipfile.ZipFile | None = None  # CPython's ZipFile supports concurrent member reads

    def read(self, name: str) -> bytes:
        return self.archive.read(name) if self.archive else (self.path / name).read_bytes()

    def sample(self, k: int, seed: int) -> ImageSet:
        """A seeded random subset of k images (all of them when k is 0 or not smaller)."""
        if not 0 < k < len(self.names):
            return self
        pick = np.sort(np.random.default_rng(seed).choice(len(self.names), size=k, replace=False))
        return replace(self, names=tuple(self.names[i] for i in pick))


@contextlib.contextmanager
def open_images(path: Path) -> Iterator[ImageSet]:
    """The JPEGs of a folder (directly in it) or of a zip (any member path); a set of none is a UserError."""
    path = Path(path)
    if path.is_dir():
        yield ImageSet(path, tuple(p.name for p in list_images(path)))
        return
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a folder of JPEGs or a zip file; check the path")
    with zipfile.ZipFile(path) as archive:
        names = tuple(sorted(n for n in archive.namelist() if n.lower().endswith(JPEG_SUFFIXES)
                             and not n.startswith("__MACOSX/") and not Path(n).name.startswith(".")))
        if not names:
            raise UserError(f"{path}: no .jpg/.jpeg images in this zip")
        yield ImageSet(path, names, archive)


class InceptionFeatures:
    """N x 2048 float64 features of uint8 images; one loaded network reused for every set."""

    def __init__(self, weights: Path, device: torch.device | str = "cpu", batch_size: int = 50,
                 half: bool = False, workers: int = 0, progress: bool = True, progress_every_s: float = 60.0):
        self.weights = Path(weights)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.half = half and self.device.type == "cuda"  # fp16 convolutions are slower than fp32 on a CPU
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress
        self.progress_every_s = progress_every_s  # off a terminal: one progress line this often
        # channels_last whatever hardware.channels_last says (that one is for training): 1.6x on a CPU
        self.model = fuse_conv_bn_relu(load_inception(self.weights)).to(self.device,
                                                                       memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """Features of uint8 images, N x 3 x H x W (any device, any strides), in batches of batch_size."""
        out = []
        for start in range(0, len(images), self.batch_size):
            x = images[start:start + self.batch_size].to(self.device, non_blocking=True).float().div_(255)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
                pool3 = self.model(x.contiguous(memory_format=torch.channels_last))[0]
            out.append(pool3.flatten(1).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, DIMS))

    def of_set(self, images: ImageSet, desc: str = "features", cache_dir: Path | None = None) -> np.ndarray:
        """Features of every image of a set; with `cache_dir`, computed only for images not seen before."""
        if cache_dir is None:
            return self._extract(images, desc)
        cache = FeatureCache(cache_dir, self.context)
        keys = content_keys(images.read, images.names, self.workers)
        rows = cache.lookup(keys)
        # one name per new content: duplicate images run once
        todo = {key: name for key, name in zip(keys, images.names, strict=True) if key not in rows}
        if todo:
            new = self._extract(replace(images, names=tuple(todo.values())), desc)
            cache.store(list(todo), new)
            rows.update(zip(todo, new, strict=True))
        if self.progress and len(todo) < len(keys):
            print(f"{desc}: {len(keys) - len(todo):,} of {len(keys):,} images' features from the cache")
        return np.stack([rows[key] for key in keys]).astype(np.float64) if keys else np.zeros((0, DIMS))

    @functools.cached_property
    def context(self) -> dict:
        """What decides a feature row besides the image: the weights file's content and the precision."""
        return {"weights": sha256_file(self.weights), "precision": "fp16" if self.half else "fp32"}

    def _extract(self, images: ImageSet, desc: str) -> np.ndarray:
        """Features of every image of a set, decoding in worker threads while the model runs."""
        feats = []
        with progress_bar(len(images.names), desc, "img", every_s=self.progress_every_s,
                          disable=not self.progress) as bar:
            for arrays in _decoded_batches(images, self.batch_size, self.workers):
                feats.extend(self._of_arrays(arrays))
                bar.update(len(arrays))
        return np.concatenate(feats) if feats else np.zeros((0, DIMS))

    def _of_arrays(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        # Images of different sizes cannot share a tensor: run each size as its own batch, in order.
        runs: list[list[np.ndarray]] = []
        for a in arrays:
            if runs and runs[-1][0].shape == a.shape:
                runs[-1].append(a)
            else:
                runs.append([a])
        # NHWC uint8 permuted to NCHW is already channels_last in memory: no copy on the host.
        return [self(torch.from_numpy(np.stack(run)).permute(0, 3, 1, 2)) for run in runs]


def _decoded_batches(images: ImageSet, batch_size: int, workers: int) -> Iterator[list[np.ndarray]]:
    """Batches of decoded images in order, with at most PREFETCH + 1 batches decoding or waiting."""
    def load(name: str) -> np.ndarray:
        return decode_rgb(images.read(name), f"{images.path}:{name}")

    chunks = [images.names[i:i + batch_size] for i in range(0, len(images.names), batch_size)]
    pending: deque[list[Future]] = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for chunk in chunks:
            pending.append([pool.submit(load, name) for name in chunk])
            if len(pending) > PREFETCH:
                yield [f.result() for f in pending.popleft()]
        while pending:
            yield [f.result() for f in pending.popleft()]
