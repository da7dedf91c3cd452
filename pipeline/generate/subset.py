"""Which photos a scoring subset takes (generate.subset): the first FIXED photos by name, the leaderboard's
fixed photos (its thumbnails of every run), then a seeded sample of the rest. Every run scored on a subset
of one size sees the same photos, so their scores compare. No torch here: the page imports it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

FIXED = 4  # the leaderboard's fixed inputs: the first photos of the data set, or noise vectors from seed 0


def subset(photos: list[Path], size: int, seed: int) -> list[Path]:
    """`size` of the (sorted) photos: the first FIXED, then a seeded sample of the others, in name order."""
    if size <= 0 or size >= len(photos):
        return photos
    first, rest = photos[:FIXED], photos[FIXED:]
    picked = np.random.default_rng(seed).choice(len(rest), max(0, size - len(first)), replace=False)
    return sorted(first[:size] + [rest[i] for i in picked])
