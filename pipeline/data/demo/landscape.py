"""Procedural landscapes: sky with clouds and sun, mountain ridges, a tree line, water reflecting
the scene or fields, and trees, drawn with vectorised numpy (+PIL resizes) from one random generator.

Images are channel-first (3, H, W) float32 in 0..1 while drawn; demo.py gives them their looks.
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image

# (sky top, sky at the horizon, light on the land)
PALETTES = [
    ((0.24, 0.45, 0.80), (0.72, 0.83, 0.93), (1.00, 0.98, 0.92)),  # clear day
    ((0.30, 0.42, 0.72), (0.98, 0.76, 0.48), (1.00, 0.85, 0.65)),  # golden hour
    ((0.22, 0.20, 0.42), (0.96, 0.58, 0.42), (0.85, 0.65, 0.60)),  # dusk
    ((0.52, 0.56, 0.62), (0.80, 0.81, 0.82), (0.85, 0.87, 0.88)),  # overcast
]
F32 = np.float32


# ---------------------------------------------------------------- noise
def noise2d(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in 0..1: a small random grid upsampled bicubically (C speed via PIL)."""
    grid = rng.random(cells, dtype=F32)
    return np.asarray(Image.fromarray(grid, "F").resize((w, h), Image.BICUBIC))


def _fbm2d(rng: np.random.Generator, h: int, w: int, base: tuple[int, int], octaves: int = 4) -> np.ndarray:
    """Fractal noise in about 0..1, built as a pyramid (each octave doubles the grid and adds detail)
    so that only the last step is a full-size resize."""
    grid = rng.random(base, dtype=F32)
    for i in range(1, octaves):
        rows, cols = base[0] << i, base[1] << i
        grid = np.asarray(Image.fromarray(grid, "F").resize((cols, rows), Image.BICUBIC))
        grid = grid + rng.random((rows, cols), dtype=F32) * 0.5 ** i
    grid = grid / (2 - 0.5 ** (octaves - 1))
    return np.asarray(Image.fromarray(grid, "F").resize((w, h), Image.BILINEAR))


def _fbm1d(rng: np.random.Generator, x: np.ndarray, base: int, octaves: int = 5) -> np.ndarray:
    """Piecewise-linear fractal profile in 0..1: sharp like a mountain ridge."""
    out = np.zeros_like(x)
    for i in range(octaves):
        knots = np.linspace(0, 1, (base << i) + 1)
        out += np.interp(x, knots, rng.random(knots.size)).astype(F32) * 0.5 ** i
    return out / (2 - 0.5 ** (octaves - 1))


def blur(img: np.ndarray, factor: int) -> np.ndarray:
    """Cheap wide blur of a 2-D float image: shrink by `factor`, grow back bilinearly."""
    h, w = img.shape
    small = Image.fromarray(img.astype(F32), "F").resize((max(1, w // factor), max(1, h // factor)),
                                                         Image.BOX)
    return np.asarray(small.resize((w, h), Image.BILINEAR))


def _smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0, 1)
    return t * t * (3 - 2 * t)


def rgb(colour) -> np.ndarray:
    """A colour as a (3, 1, 1) float32 array, to broadcast over channel-first images."""
    return np.asarray(colour, F32).reshape(3, 1, 1)


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """a*(1-t) + b*t. Images are channel-first (3, H, W) so that an (H, W) weight broadcasts over
    long rows; channel-last would make numpy's inner loop 3 elements long (5x slower)."""
    return a + (b - a) * t


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0  # a Python float: numpy scalars would promote float32


# ---------------------------------------------------------------- scene
def _sky(rng, yy, xx, horizon, top, low) -> np.ndarray:
    t = np.clip(yy / horizon, 0, 1) ** rng.uniform(0.6, 1.6)
    sky = mix(top, low, t)
    s = yy.shape[0]
    clouds = _fbm2d(rng, s, s, (8, 3))  # wider than tall, like cloud banks
    cover = rng.uniform(0.4, 0.75)
    density = _smoothstep(cover, cover + 0.15, clouds) * _smoothstep(1.0, 0.55, yy / horizon)
    lit = mix(low * 0.5 + 0.5, rgb((0.55, 0.56, 0.62)), _smoothstep(0.45, 1.0, clouds) * 0.6)
    sky = mix(sky, lit, density * rng.uniform(0.6, 0.95))
    if rng.random() < 0.5:  # the sun: a glow and a disc
        sx, sy, r = rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.8) * horizon, rng.uniform(0.02, 0.045)
        d = np.sqrt((xx - sx) ** 2 + (yy - sy) ** 2)
        glow = np.exp(-((d / (r * 6)) ** 2)) * 0.35 * (1 - density) + _smoothstep(r, r * 0.8, d)
        sky += glow * rgb((0.6, 0.5, 0.3))
    return sky


def _ridges(rng, img, yy, xx, horizon, low) -> None:
    """0-3 mountain ridges, far to near, with haze (atmospheric perspective), slope light and snow."""
    s = img.shape[1]
    n = int(rng.integers(0, 4))
    for i in range(n):
        depth = (i + 1) / n  # 1 = the nearest
        top = horizon - rng.uniform(0.08, 0.3) * (1.2 - 0.5 * depth)
        profile = top + (1 - _fbm1d(rng, xx[0], int(rng.integers(2, 5)))) * rng.uniform(0.1, 0.25)
        profile = np.minimum(profile, horizon)
        inside = _smoothstep(0, 1.5 / s, yy - profile)
        light = 1 + np.clip(np.gradient(profile) * s * _sign(rng) * 0.6, -0.35, 0.35)
        rock = rgb([(0.36, 0.36, 0.42), (0.30, 0.34, 0.24), (0.42, 0.36, 0.30)][rng.integers(3)])
        tex = _fbm2d(rng, s, s, (8, 8), 3)
        colour = rock * (light * (0.8 + 0.4 * tex))
        if depth < 1 and rng.random() < 0.5:  # snow on the high parts of distant ranges
            snow = _smoothstep(0.5, 0.4, (yy - profile.min()) / (horizon - profile.min() + 1e-6) + tex * 0.3)
            colour = mix(colour, rgb((0.92, 0.93, 0.97)) * np.clip(light, 0.7, 1.1), snow * 0.9)
        img[:] = mix(img, mix(colour, low, (1 - depth) * 0.65 + 0.1), inside)


def _forest(rng, img, yy, xx, horizon) -> None:
    """A dark tree line along the horizon: a bumpy profile over fine foliage texture."""
    s = img.shape[1]
    x = xx[0]
    # Crowns: bumps whose spacing wanders (a sine of a slowly warped phase), over an uneven line.
    phase = x * rng.uniform(40, 90) + _fbm1d(rng, x, 6, 2) * 12
    bumps = np.sqrt(np.abs(np.sin(phase))) * 0.5 + _fbm1d(rng, x, 24, 3) * 0.7
    profile = horizon - (0.01 + rng.uniform(0.02, 0.06) * bumps)
    inside = _smoothstep(0, 1.5 / s, yy - profile) * (yy < horizon + 0.01)
    green = rgb((0.14, 0.22, 0.12)) * (0.8 + 0.5 * _fbm2d(rng, s, s, (16, 32), 3))
    img[:] = mix(img, green, inside)


def _trees(rng, img, yy, xx, horizon, base_range, light) -> None:
    """A few trees (round crowns or conifers) standing on the ground, sized by their distance."""
    s = img.shape[1]
    sun = _sign(rng)
    for _ in range(int(rng.integers(1, 7))):
        base = rng.uniform(*base_range)
        height = (0.12 + 0.5 * (base - horizon)) * rng.uniform(0.7, 1.3)
        cx = rng.uniform(0, 1)
        y0, y1 = int(max(0, (base - height) * s)), int(min(s, base * s))
        x0, x1 = int(max(0, (cx - height) * s)), int(min(s, (cx + height) * s))
        if y1 - y0 < 2 or x1 - x0 < 2:
            continue
        ty, tx = yy[y0:y1], xx[:, x0:x1]
        rel = (tx - cx) / height  # -1..1 across the crown
        if rng.random() < 0.4:  # conifer: a jagged triangle
            up = (base - ty) / height  # 0 at the foot, 1 at the tip
            half = 0.28 * (1 - up) * (1 + 0.2 * np.sin(up * 45))
            crown = _smoothstep(half, half - 0.03, np.abs(rel)) * (up > 0.08)
        else:  # deciduous: a lumpy round crown on a trunk
            cy = base - height * 0.6
            r = np.hypot(rel, (ty - cy) / height * 1.15)
            angle = np.arctan2(ty - cy, tx - cx)
            lumps = (0.03 * np.sin(angle * 5 + rng.uniform(0, 6))
                     + 0.02 * np.sin(angle * 11 + rng.uniform(0, 6)))
            crown = np.maximum(_smoothstep(0.4 + lumps, 0.37 + lumps, r), (np.abs(rel) < 0.045) * (ty > cy))
        leaf = rgb([(0.16, 0.30, 0.12), (0.22, 0.34, 0.14), (0.12, 0.22, 0.14)][rng.integers(3)])
        tex = _fbm2d(rng, y1 - y0, x1 - x0, (4, 4), 3)
        shade = (0.7 + 0.6 * np.clip(rel * sun + 0.3, -0.5, 0.8) * tex) * light
        img[:, y0:y1, x0:x1] = mix(img[:, y0:y1, x0:x1], leaf * shade, crown)


def _water(rng, img, yy, xx, horizon, row) -> None:
    """Below the horizon: the scene above mirrored, broken by ripples, tinted and darkened."""
    s = img.shape[1]
    depth = np.clip((yy[row:] - horizon) / (1 - horizon), 0, 1)
    ripple = noise2d(rng, s - row, s, (24, 4)) - 0.5  # many rows, few columns: horizontal bands
    src_y = np.clip(2 * horizon - yy[row:] + ripple * 0.02 * depth, 0, horizon - 1e-3)
    src_x = np.clip(xx + ripple * 0.06 * depth, 0, 1)
    refl = img[:, (src_y * (s - 1)).astype(np.intp), (src_x * (s - 1)).astype(np.intp)]
    tint = rgb([(0.10, 0.22, 0.30), (0.16, 0.28, 0.26)][rng.integers(2)])
    water = mix(refl * 0.8, tint, 0.25 + 0.35 * depth)
    water += _smoothstep(0.62, 0.72, noise2d(rng, s - row, s, (48, 6))) * (1 - depth) * 0.22
    img[:, row:] = water


def _fields(rng, img, yy, xx, horizon, row, light) -> None:
    """Below the horizon: bands of meadow and crop fields widening toward the viewer."""
    s = img.shape[1]
    depth = np.clip((yy[row:] - horizon) / (1 - horizon), 0, 1)
    k = int(rng.integers(3, 7))
    edges = np.sort(rng.uniform(0, 1, k - 1)).astype(F32) ** 1.5
    wave = (_fbm1d(rng, xx[0], 3, 3) - 0.5) * 0.15
    band = np.searchsorted(edges, depth + wave * depth)
    greens = np.asarray([(0.30, 0.45, 0.17), (0.48, 0.52, 0.22), (0.62, 0.56, 0.26), (0.24, 0.38, 0.16)], F32)
    colours = greens[rng.integers(0, len(greens), k)] * rng.uniform(0.85, 1.15, (k, 1)).astype(F32)
    ground = np.moveaxis(colours[band], -1, 0) * light
    grain = _fbm2d(rng, s - row, s, (16, 8), 3) - 0.5
    img[:, row:] = ground * (1 + grain * (0.2 + 0.3 * depth) - 0.15 * depth)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in 0..1: the axis, yy as a column (H, 1) and xx as a row (1, W).
    Whatever depends on one coordinate only (sky gradient, depth) stays 1-D and broadcasts."""
    axis = (np.arange(size, dtype=F32) + 0.5) / size
    axis.flags.writeable = False
    return axis, axis[:, None], axis[None, :]


def scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (3, size, size) float32 landscape in 0..1: smooth shading, no texture style yet. Drawn at half
    size and enlarged (4x less work; a photo's softness), so only the looks add full-size detail."""
    small = _draw(rng, max(8, size // 2))
    return np.stack([np.asarray(Image.fromarray(c, "F").resize((size, size), Image.BILINEAR)) for c in small])


def _draw(rng: np.random.Generator, size: int) -> np.ndarray:
    axis, yy, xx = _grid(size)
    top, low, light = (rgb(np.asarray(c, F32) + rng.uniform(-0.04, 0.04, 3).astype(F32))
                       for c in PALETTES[rng.integers(len(PALETTES))])
    horizon = rng.uniform(0.4, 0.68)
    row = int(np.searchsorted(axis, horizon))  # first row below the horizon
    img = _sky(rng, yy, xx, horizon, top, low)
    _ridges(rng, img, yy, xx, horizon, low)
    if rng.random() < 0.6:
        _forest(rng, img, yy, xx, horizon)
    if rng.random() < 0.5:
        if rng.random() < 0.5:  # trees on the far shore, so that the water reflects them
            _trees(rng, img, yy, xx, horizon, (horizon, horizon + 0.01), light)
        _water(rng, img, yy, xx, horizon, row)
    else:
        _fields(rng, img, yy, xx, horizon, row, light)
        if rng.random() < 0.7:
            _trees(rng, img, yy, xx, horizon, (horizon + 0.05, 1.05), light)
    return np.clip(img, 0, 1)


