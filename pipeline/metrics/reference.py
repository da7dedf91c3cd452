"""Scoring against another reference set: the training paintings it holds are left out first.

Kaggle's hidden reference set is reported to be the rest of the Berkeley monet2photo paintings, and a user
who has that set can score against it (`score --real`, `score.real`). It holds the 300 training paintings
too, so a generator that copies them would look better locally than on the leaderboard: a reference image
is left out when it is a training painting, either the same pixels after decoding or a near-duplicate
(re-encoded, resized, slightly recoloured) by a 64-bit difference hash within HAMMING_MAX bits.

The rule: only a reference set that is not the training paintings is filtered. When it is the training
paintings themselves (the default, or a copy in which every image is one) nothing is left out: that is
the usual local score, which ranks runs but is not the leaderboard's number.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..engine.errors import UserError
from ..images import decode_rgb
from .features import ImageSet, open_images

# Bits in which two difference hashes may differ and still be one painting. Measured on the 300 demo
# paintings (landscapes drawn alike on purpose): distinct paintings differ in 14 bits or more (0.1% of
# pairs in 18 or fewer); the same painting re-encoded at JPEG quality 50-75 in at most 7, resized up and
# back in at most 4, 10% brighter in at most 8.
HAMMING_MAX = 8


@dataclass(frozen=True)
class Reference:
    """The reference images to score against, and what was left out of them."""

    images: ImageSet
    left_out: int = 0  # training paintings found in the reference set and left out
    same_pixels: int = 0  # of which identical after decoding (the rest are near-duplicates)
    note: str = ""  # one line for the output, "" when the reference was not filtered


def difference_hash(image: Image.Image) -> int:
    """64-bit dHash of a 9x8 grey thumbnail: one bit per pair of horizontal neighbours, left brighter?"""
    grey = np.asarray(image.convert("L").resize((9, 8), Image.LANCZOS), dtype=np.int16)
    return int.from_bytes(np.packbits(grey[:, :-1] > grey[:, 1:]).tobytes(), "big")


def signatures(images: ImageSet, workers: int = 0) -> tuple[list[str], np.ndarray]:
    """(sha256 of the decoded pixels, difference hash as uint64) of every image of a set."""
    def one(name: str) -> tuple[str, int]:
        rgb = decode_rgb(images.read(name), f"{images.path}:{name}")
        pixels = hashlib.sha256(str(rgb.shape).encode() + rgb.tobytes()).hexdigest()
        return pixels, difference_hash(Image.fromarray(rgb))

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        found = list(pool.map(one, images.names))
    return [p for p, _ in found], np.array([h for _, h in found], dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """len(a) x len(b) bit distances of two uint64 hash vectors."""
    xor = np.ascontiguousarray(a[:, None] ^ b[None, :])
    return np.unpackbits(xor.view(np.uint8).reshape(len(a), len(b), 8), axis=-1).sum(axis=-1)


def without_training(reference: ImageSet, training: Path, workers: int = 0) -> Reference:
    """`reference` less the training paintings it holds (see the module's rule)."""
    ref_pixels, ref_hashes = signatures(reference, workers)
    with open_images(training) as train_set:
        train_pixels, train_hashes = signatures(train_set, workers)
    known = set(train_pixels)
    same = np.array([p in known for p in ref_pixels], dtype=bool)
    near = (hamming(ref_hashes, train_hashes) <= HAMMING_MAX).any(axis=1) if len(train_hashes) else same
    drop = same | near
    if drop.all():
        return Reference(reference, note=f"every image of {reference.path} is a training painting: it is "
                                         "the training set, scored as it is (nothing left out)")
    kept = tuple(n for n, d in zip(reference.names, drop, strict=True) if not d)
    if len(kept) < 2:
        raise UserError(f"{reference.path}: only {len(kept)} of its {len(reference.names)} images are not "
                        f"training paintings ({training}); give a larger reference set")
    left_out, n_same = int(drop.sum()), int(same.sum())
    note = ""
    if left_out:
        note = (f"left out {left_out} reference images that are training paintings "
                f"({n_same} with the same pixels, {left_out - n_same} near-duplicates)")
    return Reference(replace(reference, names=kept), left_out, n_same, note)
