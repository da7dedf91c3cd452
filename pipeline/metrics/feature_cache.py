"""Inception features cached per image by content, so that re-scoring pays only for the images that changed.

A row is keyed by the sha256 of the image file's bytes and kept in a shard under
`<cache_dir>/features/<context>/`, where the context is a digest of everything else that decides the
row: CACHE_VERSION, the weights file's content and the precision. Each extraction writes its new rows
as one shard, atomically and named by its keys, so a killed run leaves a whole shard or none; a shard
that cannot be read is deleted and its rows are computed again. Rows are stored as float32, the
network's own output, so a cached row equals a fresh one bit for bit. Nothing is evicted: 8 KB per image
ever scored; delete the features folder to start afresh.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import zipfile
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..engine import atomic
from ..engine.keys import digest

CACHE_VERSION = 2  # bump when feature extraction changes what it returns
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def content_keys(read: Callable[[str], bytes], names: Collection[str], workers: int) -> list[str]:
    """sha256 of each named image's bytes (hashlib releases the GIL: threads hash in parallel)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda name: hashlib.sha256(read(name)).hexdigest(), names))


class FeatureCache:
    """Feature rows by content key for one extraction context, kept in shards of one folder."""

    def __init__(self, cache_dir: Path, context: dict) -> None:
        self.folder = Path(cache_dir) / "features" / digest({"version": CACHE_VERSION, **context})[:32]

    def lookup(self, keys: Collection[str]) -> dict[str, np.ndarray]:
        """The cached rows (float32) of those of `keys` computed before, by key."""
        missing, found = set(keys), {}
        for path in sorted(self.folder.glob("*.npz")):
            if not missing:
                break
            try:
                with np.load(path) as shard:
                    shard_keys = shard["keys"]
                    hits = np.flatnonzero(np.isin(shard_keys, list(missing)))
                    rows = shard["features"] if len(hits) else None  # read only the shards that help
            except _UNREADABLE as exc:
                self._drop(path, type(exc).__name__)
                continue
            if rows is not None and (shard_keys.ndim != 1 or rows.ndim != 2 or len(rows) != len(shard_keys)):
                self._drop(path, "keys and rows do not match")
                continue
            for i in hits:
                found[str(shard_keys[i])] = rows[i]
            missing -= found.keys()
        return found

    def store(self, keys: list[str], feats: np.ndarray) -> None:
        """Keep `feats` (one row per key) as a new shard."""
        if not keys:
            return
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys), features=np.asarray(feats, np.float32))
        atomic.write_bytes(self.folder / f"{digest(sorted(keys))[:32]}.npz", buf.getvalue())

    @staticmethod
    def _drop(path: Path, why: str) -> None:
        print(f"features: {path}: unreadable cache shard ({why}), deleted; its images are computed again",
              file=sys.stderr)
        with contextlib.suppress(OSError):
            path.unlink()
