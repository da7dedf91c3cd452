"""augment stage: each Monet painting kept plus augment.variants augmented copies (300 -> 1,500).

With only 300 paintings, the discriminator memorises them quickly; cheap, label-preserving variety
(flip, a slightly rotated and re-framed crop, small colour shifts, sensor-like noise) slows that
down. The recipe lives in [augment] settings; a contact sheet shows what it does.

Deterministic: each variant's random state comes from (augment.seed, file name, variant number),
never from global state or from which worker ran it, so a re-run writes the same bytes. Keyed by
name rather than position, so adding a painting does not change the others' variants.
"""
from __future__ import annotations

import functools
import hashlib
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import AugmentConfig, Config
from ..engine.progress import track
from ..images import encode_jpeg, list_images, read_rgb

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # else importing it asks PyPI for a newer version
import albumentations as A

SHEET_ROWS = 6
SHEET_THUMB = 128


@functools.lru_cache(maxsize=4)  # one per worker process and image size
def recipe(a: AugmentConfig, size: tuple[int, int]) -> A.Compose:
    """The augmentation pipeline for paintings of `size` (height, width); albumentations 2.x."""
    return A.Compose([
        A.Rotate(limit=a.rotate_limit, crop_border=True, p=1.0),  # crop: no empty corners to learn
        A.RandomResizedCrop(size=size, scale=a.crop_scale, ratio=a.crop_ratio, p=1.0),
        A.HorizontalFlip(p=a.hflip_p),
        A.ColorJitter(brightness=a.color_jitter, contrast=a.color_jitter, saturation=a.color_jitter,
                      hue=a.color_jitter / 5, p=1.0),
        A.GaussNoise(std_range=a.noise_std, p=1.0),
    ])


def variant_seed(seed: int, name: str, k: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}:{k}".encode()).digest()[:8], "little")


def augment_image(image: np.ndarray, transform: A.Compose, seed: int, name: str, k: int) -> np.ndarray:
    """Variant k of one painting. One generator shared by all the transforms: Compose(seed=...) would
    give each transform its own generator with the same seed, and their draws would be correlated
    (the flip decided by the same number as the rotation angle)."""
    s = variant_seed(seed, name, k)
    transform.set_random_state(np.random.default_rng(s), random.Random(s))
    return transform(image=image)["image"]


def _augment_file(job: tuple[Path, Path, AugmentConfig]) -> int:
    src, folder, a = job
    image = read_rgb(src)
    transform = recipe(a, image.shape[:2])
    shutil.copyfile(src, folder / src.name)  # the original, byte for byte
    for k in range(1, a.variants + 1):
        variant = augment_image(image, transform, a.seed, src.name, k)
        (folder / f"{src.stem}_{k}.jpg").write_bytes(encode_jpeg(variant, a.quality))
    return 1 + a.variants


def contact_sheet(folder: Path, names: list[str], variants: int, path: Path) -> None:
    """A PNG with one row per painting: the original, then its variants."""
    cols, gap = 1 + variants, 4
    sheet = Image.new("RGB", (cols * (SHEET_THUMB + gap) + gap, len(names) * (SHEET_THUMB + gap) + gap),
                      "white")
    for row, name in enumerate(names):
        stem = Path(name).stem
        files = [folder / name] + [folder / f"{stem}_{k}.jpg" for k in range(1, variants + 1)]
        for col, file in enumerate(files):
            with Image.open(file) as img:
                thumb = img.convert("RGB").resize((SHEET_THUMB, SHEET_THUMB), Image.BILINEAR)
            sheet.paste(thumb, (gap + col * (SHEET_THUMB + gap), gap + row * (SHEET_THUMB + gap)))
    sheet.save(path, optimize=True)


def build(cfg: Config, out: Path) -> str:
    """Write `out`/monet/ (originals + variants) and `out`/contact_sheet.png; returns the summary line."""
    a = cfg.augment
    paintings = list_images(cfg.raw_dir / "monet_jpg")
    folder = out / "monet"
    folder.mkdir(parents=True)
    workers = min(cfg.hardware.workers or os.cpu_count() or 1, len(paintings))
    with ProcessPoolExecutor(workers) as pool:
        done = pool.map(_augment_file, [(p, folder, a) for p in paintings], chunksize=8)
        # the bar starts after the workers exist: forking while tqdm's monitor thread runs is unsafe
        written = sum(track(done, len(paintings), "augmenting", "painting",
                            every_s=cfg.hardware.progress_every_s))
    contact_sheet(folder, [p.name for p in paintings[:SHEET_ROWS]], a.variants, out / "contact_sheet.png")
    return (f"{len(paintings):,} paintings -> {written:,} images ({a.variants} variants each); "
            "see contact_sheet.png")
