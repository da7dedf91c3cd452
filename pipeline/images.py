"""Image files: listing, validation against the competition's rules, decoding and JPEG encoding.

Every image that enters the pipeline passes `check_image`, so a corrupt, grayscale, wrong-sized or
mis-named file is reported by path with the reason instead of failing somewhere deep in training.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .engine.errors import UserError

JPEG_SUFFIXES = (".jpg", ".jpeg")
MAX_PIXELS = 4096 * 4096  # refuse decompression bombs long before PIL's own limit


def list_images(folder: Path, suffixes: tuple[str, ...] = JPEG_SUFFIXES) -> list[Path]:
    """The image files directly in `folder`, sorted; a missing or empty folder is a UserError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found; check the path (expected a folder of JPEGs)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))
    if not files:
        raise UserError(f"{folder}: no {'/'.join(suffixes)} images in this folder; "
                        "check the path or re-run the stage that fills it")
    return files


def check_image(source: Path | bytes, size: int, name: str = "") -> str | None:
    """The reason `source` (a path or JPEG bytes) breaks the rules, or None when it is a valid size x size
    RGB JPEG."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not data:
        return "empty file (0 bytes)"
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG":
                return f"not a JPEG ({img.format or 'unknown'} data)"
            if img.width * img.height > MAX_PIXELS:
                return f"{img.width}x{img.height} is far too large, expected {size}x{size}"
            if img.size != (size, size):
                return f"{img.width}x{img.height}, expected {size}x{size}"
            if img.mode != "RGB":
                return f"colour mode {img.mode}, expected RGB (convert it to 3-channel RGB)"
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"not a decodable image ({type(exc).__name__}: {str(exc)[:80]})"
    return None


def describe_bad(bad: list[tuple[Path, str]], limit: int = 5) -> str:
    """`a.jpg (reason); b.jpg (reason)` for a one-line message, with a count when there are many."""
    shown = "; ".join(f"{p} ({reason})" for p, reason in bad[:limit])
    return shown + (f"; and {len(bad) - limit} more" if len(bad) > limit else "")


def decode_rgb(data: bytes, name: str = "") -> np.ndarray:
    """HxWx3 uint8 of image bytes, converted to RGB the way pytorch-fid's dataset does; a file that does
    not decode is a UserError naming it, not a PIL traceback from deep inside a stage."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{name}: not a decodable image ({type(exc).__name__}); "
                        "remove or replace it") from None


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 array of an RGB image file; an unreadable or undecodable file is a UserError naming it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); remove or replace it") from None
    return decode_rgb(data, str(path))


def encode_jpeg(array: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of an HxWx3 uint8 array (4:4:4 chroma at high quality, so colour detail survives)."""
    buf = io.BytesIO()
    Image.fromarray(array, "RGB").save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    return buf.getvalue()
