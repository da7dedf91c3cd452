"""The pictures of a leaderboard entry: the same fixed inputs turned into Monets by each run, as thumbnails.

The fixed inputs are the first FIXED photos of the data set (a photo family) or FIXED noise vectors drawn
from seed 0 (a noise family): the same for every run, so one row compared with the next shows what the
runs do differently. Each entry's pictures come from the first source it has, most faithful first:
1. its checkpoint (the one generate would use): the fixed inputs rendered through it on the CPU;
2. a scored set of its own images (a Kaggle version's fetched images.zip): the outputs generate named
   after the fixed photos (or, for another set, its first images);
3. its latest sample grid (of that run's own choice of photos or noise), as one picture.
They are kept in the entry's folder beside the page with the source they came from (path, size, time)
and made again only when that source changes, so a page refresh renders only what is new.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..engine import atomic
from ..engine.errors import UserError
from ..generate import provenance
from ..generate.subset import FIXED
from ..images import decode_rgb, list_images, read_rgb
from .runs import Entry

THUMB = 128  # px, square
GRID_WIDTH = 512  # px, the sample-grid fallback
QUALITY = 85
CACHE = "pictures.json"



def fixed_photos(photo_dir: Path) -> list[Path]:
    """The fixed photos: the first FIXED of the data set by name ([] without a data set)."""
    try:
        return list_images(photo_dir)[:FIXED]
    except UserError:
        return []


def input_pictures(photos: list[Path], folder: Path) -> list[str]:
    """Thumbnails of the fixed photos themselves, for the page's first row."""
    return _cached(folder, _stamp("photos", *photos), lambda: [read_rgb(p) for p in photos], "photo")


def pictures(entry: Entry, photos: list[Path], folder: Path) -> tuple[list[str], str]:
    """(file names in `folder`, "fixed" or "grid") of the entry's pictures; ([], "") when it has none."""
    for stamp, make, kind in _sources(entry, photos):
        names = _cached(folder, stamp, make, kind)
        if names:
            return names, kind
    return [], ""


def _sources(entry: Entry, photos: list[Path]) -> Iterator[tuple[str, Callable[[], list[np.ndarray]], str]]:
    """(what the source is, down to sizes and times; how to make its pictures; their kind), best first."""
    checkpoint = _checkpoint(entry.run_dir)
    if checkpoint is not None:
        yield _stamp("checkpoint", checkpoint, *photos), lambda: render_fixed(checkpoint, photos), "fixed"
    images = next((p for p in entry.images if p.exists() and _made_by(p) == (entry.run, entry.kernel)), None)
    if images is not None:
        yield _stamp("images", images, *photos), lambda: _outputs(images, photos), "fixed"
    grids = sorted((entry.run_dir / "samples").glob("step_*.png")) if entry.run_dir else []
    if grids:
        yield _stamp("grid", grids[-1]), lambda: [read_rgb(grids[-1])], "grid"


def _checkpoint(run_dir: Path | None) -> Path | None:
    """The checkpoint generate would use by default (best.pt when kept, else last.pt)."""
    if run_dir is None:
        return None
    return next((p for p in (run_dir / "best.pt", run_dir / "last.pt") if p.is_file()), None)


def _made_by(images: Path) -> tuple[str, str]:
    record = provenance.read(images) or provenance.UNKNOWN
    return record.run, record.kernel


def render_fixed(checkpoint: Path, photos: list[Path]) -> list[np.ndarray]:
    """The fixed inputs through the checkpoint's generator (EMA weights where it has them), on the CPU."""
    import torch

    from ..metrics.mifid import to_uint8
    from ..training.checkpoint import load_generator

    loaded = load_generator(checkpoint, "cpu")
    with torch.inference_mode():
        if loaded.family.takes_photos:
            if not photos:
                return []
            x = torch.from_numpy(np.stack([read_rgb(p) for p in photos])).permute(0, 3, 1, 2) / 127.5 - 1
        else:
            x = torch.randn(FIXED, loaded.z_dim, generator=torch.Generator().manual_seed(0))
        return list(to_uint8(loaded.generator(x)).permute(0, 2, 3, 1).numpy())


def _outputs(images: Path, photos: list[Path]) -> list[np.ndarray]:
    """The set's images of the fixed photos (generate names each after its photo), else its first ones."""
    from ..metrics.features import open_images

    with open_images(images) as image_set:
        by_stem = {Path(n).stem: n for n in image_set.names}
        names = [by_stem.get(p.stem) for p in photos]
        if not photos or None in names:
            names = list(image_set.names[:FIXED])
        return [decode_rgb(image_set.read(n), f"{images}:{n}") for n in names]


def _stamp(kind: str, *paths: Path) -> str:
    """What a source is, down to each file's size and modification time."""
    parts = [kind]
    for path in paths:
        stat = path.stat()
        parts.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def _cached(folder: Path, stamp: str, make: Callable[[], list[np.ndarray]], kind: str) -> list[str]:
    """The source's pictures: kept from an earlier refresh when made from the same source, else made now
    (the folder's other pictures removed); [] when the source cannot be read (a damaged checkpoint)."""
    try:
        cache = json.loads((folder / CACHE).read_text())
    except (OSError, ValueError):
        cache = {}
    if cache.get("source") == stamp and all((folder / n).is_file() for n in cache.get("files", [])):
        return list(cache["files"])
    try:
        arrays = make()
    except (UserError, RuntimeError, ValueError, OSError, KeyError):
        return []
    if not arrays:
        return []
    names = [_save(folder / f"{kind}-{i}.jpg", a, GRID_WIDTH if kind == "grid" else THUMB)
             for i, a in enumerate(arrays)]
    for old in folder.glob("*.jpg"):
        if old.name not in names:
            old.unlink()
    atomic.write_json(folder / CACHE, {"source": stamp, "files": names})
    return names


def _save(path: Path, array: np.ndarray, width: int) -> str:
    image = Image.fromarray(array, "RGB")
    buf = io.BytesIO()
    image.resize((width, round(image.height * width / image.width)), Image.LANCZOS).save(buf, "JPEG",
                                                                                         quality=QUALITY)
    atomic.write_bytes(path, buf.getvalue())
    return path.name
