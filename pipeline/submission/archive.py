"""The zip stage: the generated JPEGs -> submissions/images.zip, checked against the competition's rules.

Kaggle accepts `images.zip` holding 7,000-10,000 size x size RGB JPEGs at its root. A bad archive
costs a whole kernel run (hours) to find out, so every image is checked before writing, the
written archive is opened and checked again, and `check_zip` applies the same rules to any zip
(the kernel's output included). The stage's temp-path + rename means a refused set never
replaces a previous valid `images.zip`. The images' provenance record (which run made them, see
pipeline/generate/provenance.py) rides in the archive's comment: the members stay JPEGs only.
"""
from __future__ import annotations

import argparse
import os
import random
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, ZipConfig
from ..engine.errors import UserError
from ..engine.progress import track
from ..generate import provenance
from ..images import JPEG_SUFFIXES, check_image, describe_bad

# A fixed member timestamp makes the archive a pure function of the images (same images, same bytes).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ZipSummary:
    path: Path
    images: int
    bytes: int
    decoded: int  # members decoded and checked (all, or a sample right after writing)

    def __str__(self) -> str:
        return (f"{self.images:,} images, {self.bytes / 2**20:.1f} MiB, "
                f"{self.decoded:,} decoded and checked")


def build(cfg: Config, out: Path) -> str:
    """Check every image in cfg.images_dir, write them flat into `out` (stored), then re-check the archive."""
    files = _submission_files(cfg.images_dir, cfg.zip)
    every_s = cfg.hardware.progress_every_s  # off a terminal: one progress line this often
    bad = check_all([(p.name, p.read_bytes) for p in files], cfg.zip.image_size, cfg.hardware.workers,
                    f"zip: checking {cfg.images_dir}", every_s)
    if bad:
        raise UserError(f"{cfg.images_dir}: {len(bad)} image(s) are not {_rule(cfg.zip)}: "
                        f"{describe_bad(bad)}; "
                        "re-run generate (or remove them) and zip again")
    # JPEG data does not compress: storing keeps writing and Kaggle's reading fast at no cost in size.
    record = provenance.read(cfg.images_dir)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        if record is not None:
            zf.comment = provenance.as_comment(record)
        for path in track(files, len(files), "zip: writing", "img", every_s=every_s):
            info = zipfile.ZipInfo(path.name, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    summary = check_zip(out, cfg.zip, workers=cfg.hardware.workers, sample=cfg.zip.decode_sample,
                        progress_every_s=every_s)
    made_by = f"made by run {record.label}" if record else "no provenance record (scored as run unknown)"
    return f"{summary}; {made_by}"


def check_zip(path: Path, zcfg: ZipConfig, workers: int = 0, sample: int | None = None,
              progress_every_s: float = 60.0) -> ZipSummary:
    """Validate an archive against the competition's rules; a UserError lists every rule broken and by what.

    Rules: a readable zip; members flat at the root (no folders); .jpg/.jpeg names, unique; between
    min_images and max_images of them; each a zcfg.image_size square RGB JPEG (all decoded, or a
    random `sample` of them as the re-check after writing).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; give the path of an images.zip")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable zip archive ({exc}); "
                        "rebuild it with `python -m pipeline zip`") from None
    with zf:
        infos = zf.infolist()
        problems = []
        nested = [i.filename for i in infos if "/" in i.filename or "\\" in i.filename]
        if nested:
            problems.append(f"{len(nested)} member(s) inside folders, images must be at the root: "
                            f"{_names(nested)}")
        flat = [i for i in infos if i.filename not in nested]
        not_jpg = [i.filename for i in flat if Path(i.filename).suffix.lower() not in JPEG_SUFFIXES]
        if not_jpg:
            problems.append(f"{len(not_jpg)} member(s) not named .jpg/.jpeg: {_names(not_jpg)}")
        images = [i for i in flat if i.filename not in not_jpg]
        dupes = _duplicates([i.filename for i in images])
        if dupes:
            problems.append(f"{len(dupes)} duplicate name(s): {_names(dupes)}")
        problems += _count_problems(len(images), zcfg)
        checked = images
        if sample is not None and sample < len(images):
            checked = random.Random(0).sample(images, sample)
        bad = check_all([(i.filename, _member_reader(zf, i)) for i in checked], zcfg.image_size, workers,
                        f"checking {path.name}", progress_every_s)
        if bad:
            problems.append(f"{len(bad)} image(s) not {_rule(zcfg)}: {describe_bad(bad)}")
        if problems:
            raise UserError(f"{path} breaks the competition's rules: " + "; ".join(problems))
        return ZipSummary(path, len(images), path.stat().st_size, len(checked))


def check_all(sources: list[tuple[str, Callable[[], bytes]]], size: int, workers: int,
              desc: str, progress_every_s: float = 60.0) -> list[tuple[str, str]]:
    """(name, reason) for each (name, read) whose bytes are not a valid image; decoded in threads (PIL
    releases the GIL)."""
    def reason(item: tuple[str, Callable[[], bytes]]) -> str | None:
        try:
            data = item[1]()
        except (OSError, zipfile.BadZipFile) as exc:
            return f"cannot be read ({exc})"
        return check_image(data, size)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        reasons = list(track(pool.map(reason, sources), len(sources), desc, "img", every_s=progress_every_s,
                             disable=len(sources) < 500))
    return [(name, r) for (name, _), r in zip(sources, reasons, strict=True) if r is not None]


def command(cfg: Config, args: argparse.Namespace) -> int:
    """`zip --check PATH` validates an existing archive (plain `zip` is the stage)."""
    summary = check_zip(Path(args.check), cfg.zip, workers=cfg.hardware.workers,
                        progress_every_s=cfg.hardware.progress_every_s)
    print(f"{args.check}: OK ({summary})")
    return 0


def _submission_files(folder: Path, zcfg: ZipConfig) -> list[Path]:
    """The JPEGs to submit: every visible entry of `folder` must be one (hidden files are stage
    bookkeeping)."""
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found; run `python -m pipeline generate` first")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    subdirs = [p.name for p in entries if p.is_dir()]
    others = [p.name for p in entries if p.is_file() and p.suffix.lower() not in JPEG_SUFFIXES]
    files = [p for p in entries if p.is_file() and p.suffix.lower() in JPEG_SUFFIXES]
    problems = []
    if subdirs:
        problems.append(f"{len(subdirs)} subfolder(s), the zip must be flat: {_names(subdirs)}")
    if others:
        problems.append(f"{len(others)} file(s) that are not .jpg/.jpeg: {_names(others)}")
    dupes = _duplicates([p.name for p in files])
    if dupes:
        problems.append(f"{len(dupes)} name(s) that differ only in case: {_names(dupes)}")
    problems += _count_problems(len(files), zcfg)
    if problems:
        raise UserError(f"{folder}: cannot make a valid submission: " + "; ".join(problems)
                        + "; fix the folder (or the generate settings) and zip again")
    return files


def _member_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    # ZipFile reads through a locked shared file handle, so threads may read members concurrently.
    return lambda: zf.read(info)


def _count_problems(n: int, zcfg: ZipConfig) -> list[str]:
    """[] when n images make a submission, else the one problem saying why."""
    if zcfg.min_images <= n <= zcfg.max_images:
        return []
    return [f"{n:,} images, the competition needs {zcfg.min_images:,}-{zcfg.max_images:,}"]


def _duplicates(names: list[str]) -> list[str]:
    """Names that collide case-insensitively (they would overwrite each other when unzipped on many
    systems)."""
    seen: dict[str, int] = {}
    for name in names:
        seen[name.lower()] = seen.get(name.lower(), 0) + 1
    return sorted({n for n in names if seen[n.lower()] > 1})


def _names(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _rule(zcfg: ZipConfig) -> str:
    return f"{zcfg.image_size}x{zcfg.image_size} RGB JPEGs"
