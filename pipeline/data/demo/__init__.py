"""The offline demo data set: procedurally drawn landscapes as "photos" and, as "paintings", new
landscapes of the same kind rendered in one consistent impressionist style.

Why synthetic and why this style: the demo must run with no Kaggle account, and a small CycleGAN
trained for two minutes on 64 px crops must visibly learn something. So the painting style is
made of *local* cues a crop can see: a palette shift (warm lights, lifted blue-violet shadows,
pastel saturation) and short oriented brush dabs with bristle streaks on a canvas weave, while
the photos are smooth shading with fine sensor noise. Paintings and photos are never paired.

The scenes come from landscape.py; this module gives them their looks and writes the data set. Each
image has its own seed derived from (demo_seed, kind, index), so the set is byte-identical however
the work is split over processes.
"""
from __future__ import annotations

import functools
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ...engine.progress import progress
from ...images import encode_jpeg
from .landscape import F32, blur, mix, noise2d, rgb, scene

QUALITY = 90
KINDS = {"monet_jpg": 0, "photo_jpg": 1}


# ---------------------------------------------------------------- looks
@functools.lru_cache(maxsize=4)
def _sensor(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A vignette and a tile of sensor noise twice the image size, made once per process from a fixed
    seed; each photo takes a random window of the tile (drawing fresh noise per photo costs more than
    the whole scene)."""
    axis = np.linspace(-1, 1, size, dtype=F32)
    vignette = 1 - 0.09 * (axis[:, None] ** 2 + axis[None, :] ** 2)
    noise = np.random.default_rng(12345).standard_normal((3, 2 * size, 2 * size), dtype=F32) * 0.012
    return vignette, noise


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """(3, H, W) float 0..1 -> (H, W, 3) uint8."""
    return np.ascontiguousarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0))


def render_photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo (H, W, 3 uint8): the scene with exposure/contrast variation, a vignette and sensor noise."""
    img = scene(rng, size)
    vignette, noise = _sensor(size)
    oy, ox = rng.integers(0, size, 2)
    img = ((img - 0.5) * rng.uniform(0.95, 1.2) + (0.5 + rng.uniform(-0.05, 0.05))) * vignette
    return _to_uint8(img + noise[:, oy:oy + size, ox:ox + size])


def _impressionist_palette(img: np.ndarray) -> np.ndarray:
    """Warm pastel lights, lifted shadows pushed to blue-violet, stronger saturation."""
    lum = np.tensordot(np.asarray((0.299, 0.587, 0.114), F32), img, 1)
    img = lum + (img - lum) * 1.5
    img = 0.12 + 0.82 * img
    img = mix(img, rgb((0.38, 0.30, 0.66)), (1 - lum) ** 2 * 0.5)
    return img + rgb((0.12, 0.06, -0.06)) * lum ** 2


def _orientation(lum: np.ndarray, rng: np.random.Generator, bins: int) -> np.ndarray:
    """Stroke angle per pixel, quantised to `bins` directions: along the picture's contours where it
    has edges (structure tensor), else a gently wandering near-horizontal field."""
    gy, gx = np.gradient(blur(lum, 4))
    jxx, jxy, jyy = blur(gx * gx, 8), blur(gx * gy, 8), blur(gy * gy, 8)
    # Doubled angles make directions 180 degrees apart agree; the wandering field fills flat areas.
    wander = (rng.random() - 0.5) * 0.6 + (noise2d(rng, *lum.shape, (4, 4)) - 0.5) * 1.6
    flat = 2e-5
    theta = 0.5 * np.arctan2(-2 * jxy + flat * np.sin(2 * wander), (jyy - jxx) + flat * np.cos(2 * wander))
    return (np.round(theta * (bins / np.pi)) * (np.pi / bins)).astype(F32)


def _dabs(img: np.ndarray, under: np.ndarray, angle: np.ndarray, rng: np.random.Generator,
          length: float, width: float) -> np.ndarray:
    """One layer of short oriented brush dabs, painted over `img`.

    Each pixel's coordinates are rotated by its stroke angle and tiled by staggered bricks of
    length x width; a brick is one dab of the colour under its centre (with a small random tint),
    with a soft rounded end, bristle streaks along its length and a lit ridge (impasto). Pixels of
    one angle share a rotation, so bricks are exact there and break where the direction turns,
    as strokes do."""
    s = img.shape[1]
    ys, xs = np.indices((s, s), dtype=F32)
    c, si = np.cos(angle), np.sin(angle)
    reach = 2 * (int(s * 1.5 / min(length, width)) + 2)  # bricks per axis, covering any rotation
    stagger, bristle_phase, *tints = rng.random((5, reach * reach), dtype=F32)
    ou, ov = rng.uniform(0, length), rng.uniform(0, width)
    v = (y_rot := ys * c - xs * si) + ov
    iv = np.floor(v / width).astype(np.intp) % reach
    shift = np.take(stagger, iv) * length
    u = xs * c + ys * si + ou + shift
    iu = np.floor(u / length)
    fu = u / length - iu - 0.5  # -0.5..0.5 along the brick
    fv = v / width - np.floor(v / width) - 0.5  # -0.5..0.5 across it
    brick = (iu.astype(np.intp) % reach) * reach + iv
    # Back to picture coordinates: the colour under the brick's centre.
    uc, vc = u - fu * length - ou - shift, y_rot - fv * width
    cx = np.clip(uc * c - vc * si, 0, s - 1).astype(np.intp)
    cy = np.clip(uc * si + vc * c, 0, s - 1).astype(np.intp)
    colour = np.take(under.reshape(3, -1), cy * s + cx, axis=1)
    phase = np.take(bristle_phase, brick)
    light = (np.sin(fv * 19 + phase * 6) * 0.5 + phase - 0.5) * 0.05 + 0.06 * (0.25 - fv * fv) - 0.01
    colour += np.stack([(np.take(t, brick) - 0.5) * 0.09 for t in tints]) + light
    alpha = np.clip((1 - np.square(np.square(2 * fu)) - np.square(2 * fv)) * 4, 0, 1)
    return mix(img, colour, alpha)


def render_painting(rng: np.random.Generator, size: int) -> np.ndarray:
    """A painting (H, W, 3 uint8): a new scene in the demo's impressionist style."""
    img = _impressionist_palette(scene(rng, size))
    soft = np.stack([blur(channel, 2) for channel in img])
    angle = _orientation(np.tensordot(np.asarray((0.3, 0.59, 0.11), F32), soft, 1), rng, bins=8)
    scale = size / 256
    out = soft
    for length, width in ((14, 6), (10, 4.5), (7, 3.5)):
        out = _dabs(out, soft, angle, rng, max(2.0, length * scale), max(1.5, width * scale))
    weave = np.sin(np.arange(size, dtype=F32) * (np.pi / 1.5))
    return _to_uint8(out + 0.02 * weave[:, None] * weave[None, :])


# ---------------------------------------------------------------- the data set
def demo_names(kind: str, n: int, seed: int) -> list[str]:
    """`n` distinct names of 10 hex characters, like the competition's, fixed by (seed, kind)."""
    names: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(names) < n:
        name = hashlib.sha256(f"{seed}:{kind}:{i}".encode()).hexdigest()[:10]
        i += 1
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _render_chunk(job: tuple[Path, str, int, int, list[tuple[int, str]]]) -> int:
    folder, kind, seed, size, items = job
    render = render_painting if kind == "monet_jpg" else render_photo
    for index, name in items:
        rng = np.random.default_rng([seed, KINDS[kind], index])
        (folder / f"{name}.jpg").write_bytes(encode_jpeg(render(rng, size), QUALITY))
    return len(items)


def write_demo(out: Path, n_monet: int, n_photos: int, size: int, seed: int, workers: int = 0,
               progress_every_s: float = 60.0) -> None:
    """Write `out`/monet_jpg and `out`/photo_jpg, the competition's layout, in parallel over processes
    (progress: a bar on a terminal, else a line every `progress_every_s` seconds)."""
    jobs = []
    for kind, n in (("monet_jpg", n_monet), ("photo_jpg", n_photos)):
        folder = Path(out) / kind
        folder.mkdir(parents=True, exist_ok=True)
        items = list(enumerate(demo_names(kind, n, seed)))
        jobs += [(folder, kind, seed, size, items[i:i + 32]) for i in range(0, n, 32)]
    with ProcessPoolExecutor(min(workers or os.cpu_count() or 1, len(jobs))) as pool:
        done = pool.map(_render_chunk, jobs)
        # the bar starts after the workers exist: forking while tqdm's monitor thread runs is unsafe
        with progress(n_monet + n_photos, "demo images", "img", every_s=progress_every_s) as bar:
            for n in done:
                bar.update(n)
