"""download stage: the competition's images into data/raw/{monet_jpg,photo_jpg}, validated, with a manifest.

Sources (download.source): `kaggle` (the official client, then a safe unzip), `dir:PATH` (a folder
laid out like the competition's, hard-linked when it can be), `demo` (synthesised offline, see
demo.py) and `auto` (the notebook's input folder inside a Kaggle kernel, else kaggle).

Every image of every source is checked (decodable JPEG, image_size square, RGB) before the stage
completes: a bad file is named with its reason, and either stops the stage (default) or, with
download.skip_bad, is left out and listed. data/raw/manifest.json records file, size and sha256 of
every image kept, so a user can see exactly what the later stages were trained on.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..config import Config
from ..engine import atomic
from ..engine.errors import UserError
from ..engine.progress import track
from ..images import check_image, describe_bad, list_images
from .sources import archive_fetcher, dir_source

FOLDERS = ("monet_jpg", "photo_jpg")  # what is kept; the archive's TFRecord folders are not
MAX_ARCHIVE_BYTES = 8 << 30  # the real archive unpacks to ~0.4 GB (TFRecords included)
MAX_RATIO = 100  # JPEGs hardly compress; a member that unpacks 100x is not an image
MAX_LISTED = 20  # bad files named in the error line; skip_bad lists them all

Found = dict[str, list[tuple[Path, int, str]]]  # folder -> [(path, size, sha256)] of the good images


def build(cfg: Config, out: Path) -> str:
    """Fill `out` with monet_jpg/, photo_jpg/ and manifest.json; returns the summary line."""
    d = cfg.download
    workers = cfg.hardware.workers or os.cpu_count() or 1
    every_s = cfg.hardware.progress_every_s  # off a terminal: one progress line this often
    folder = dir_source(cfg)
    out.mkdir(parents=True)
    if folder is not None:
        source = f"folder {folder}"
        good, bad = inspect({name: folder / name for name in FOLDERS}, d.image_size, workers, every_s)
        _refuse_bad(bad, d.skip_bad, source)
        _link_or_copy(good, out, every_s)
    elif d.source == "demo":
        from .demo import write_demo  # numpy rendering code, needed only here

        source = f"the demo generator (seed {d.demo_seed})"
        write_demo(out, d.demo_monet, d.demo_photos, d.image_size, d.demo_seed, workers, every_s)
        good, bad = _inspect_in_place(out, d.image_size, workers, d.skip_bad, source, every_s)
    else:  # kaggle, or auto outside a Kaggle notebook
        source = f"Kaggle competition {d.competition}"
        archive = archive_fetcher("kaggle")(d.competition, cfg.cache_dir / "downloads")
        try:
            safe_extract(archive, out, FOLDERS, every_s)
        finally:
            archive.unlink(missing_ok=True)  # 0.4 GB; a re-run downloads again rather than trust an old one
        good, bad = _inspect_in_place(out, d.image_size, workers, d.skip_bad, source, every_s)
    if d.source == "demo":
        expected = {"monet_jpg": d.demo_monet, "photo_jpg": d.demo_photos}
    else:
        expected = {"monet_jpg": d.expect_monet, "photo_jpg": d.expect_photos}
    _refuse_empty(good, bad, source)
    _check_counts(good, bad, expected, strict=folder is None and d.source != "demo",
                  competition=d.competition)
    write_manifest(out / "manifest.json", good, bad, source)
    if bad:
        print(f"download: skipped {len(bad)} bad image(s) (download.skip_bad=true):")
        for path, reason in bad:
            print(f"  {path}: {reason}")
    n_monet, n_photo = len(good["monet_jpg"]), len(good["photo_jpg"])
    skipped = f"; {len(bad)} bad skipped (listed in manifest.json)" if bad else ""
    return f"{n_monet:,} paintings + {n_photo:,} photos from {source}{skipped}"


# ---------------------------------------------------------------- validation
def _inspect_one(path: Path, size: int) -> tuple[int, str, str | None]:
    """(size in bytes, sha256, reason it is bad or None): one read serves the check and the manifest."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return 0, "", f"cannot be read ({exc.strerror or exc})"
    return len(data), hashlib.sha256(data).hexdigest(), check_image(data, size)


def inspect(folders: dict[str, Path], size: int, workers: int,
            progress_every_s: float = 60.0) -> tuple[Found, list[tuple[Path, str]]]:
    """Check every JPEG of each folder (threads: decoding releases the GIL); a missing or empty folder
    is a UserError. Returns the good images per folder and the bad ones with their reasons."""
    files = {name: list_images(folder) for name, folder in folders.items()}
    flat = [(name, p) for name, paths in files.items() for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        results = list(track(pool.map(lambda item: _inspect_one(item[1], size), flat), len(flat),
                             "checking images", "img", every_s=progress_every_s))
    good: Found = {name: [] for name in folders}
    bad: list[tuple[Path, str]] = []
    for (name, path), (nbytes, sha, reason) in zip(flat, results, strict=True):
        if reason is None:
            good[name].append((path, nbytes, sha))
        else:
            bad.append((path, reason))
    return good, bad


def _refuse_bad(bad: list[tuple[Path, str]], skip_bad: bool, source: str) -> None:
    if bad and not skip_bad:
        more = (f" (the first {MAX_LISTED}; --set download.skip_bad=true lists them all)"
                if len(bad) > MAX_LISTED else "")
        raise UserError(f"{len(bad)} bad image(s) in {source}{more}: {describe_bad(bad, limit=MAX_LISTED)}. "
                        "Replace or remove them, or add --set download.skip_bad=true to leave them out")


def _refuse_empty(good: Found, bad: list[tuple[Path, str]], source: str) -> None:
    """With skip_bad, a folder whose every image is bad must still stop the stage here: completing with no
    paintings (or photos) would only fail later, in a stage that tells the user to re-run this one."""
    empty = [name for name, rows in good.items() if not rows]
    if empty:
        raise UserError(f"no good image left in {', '.join(f'{n}/' for n in empty)} of {source} once "
                        f"{len(bad)} bad image(s) are skipped ({describe_bad(bad)}); replace them")


def _inspect_in_place(out: Path, size: int, workers: int, skip_bad: bool, source: str,
                      progress_every_s: float = 60.0) -> tuple[Found, list[tuple[Path, str]]]:
    """Check images already written into `out`; bad ones are removed (when skipping) and reported by
    their name inside the source, since `out` is a temp folder the user never sees."""
    good, bad = inspect({name: out / name for name in FOLDERS}, size, workers, progress_every_s)
    named = [(p.relative_to(out), reason) for p, reason in bad]
    _refuse_bad(named, skip_bad, source)
    for path, _ in bad:
        path.unlink()
    return good, named


def _check_counts(good: Found, bad: list[tuple[Path, str]], expected: dict[str, int], strict: bool,
                  competition: str) -> None:
    """The kaggle source must hold the expected counts (else it is not this competition's data); a
    folder is only reported when it differs, since a subset is fine for experiments."""
    for name, want in expected.items():
        found = len(good[name]) + sum(1 for p, _ in bad if p.parent.name == name)
        if found == want:
            continue
        message = f"{name}/ holds {found:,} images, expected {want:,}"
        if strict:
            raise UserError(f"the downloaded archive's {message}: this is not the data of {competition} "
                            "(check download.competition, download.expect_monet/expect_photos)")
        print(f"download: warning: {message} (download.expect_monet/expect_photos)", file=sys.stderr)


def write_manifest(path: Path, good: Found, bad: list[tuple[Path, str]], source: str) -> None:
    """manifest.json: file, size, sha256 of every kept image, and what was skipped and why."""
    files = [{"file": f"{name}/{p.name}", "size": n, "sha256": sha}
             for name, rows in good.items() for p, n, sha in rows]
    atomic.write_json(path, {"source": source, "files": files,
                             "skipped": [{"file": str(p), "reason": r} for p, r in bad]})


# ---------------------------------------------------------------- sources
def _link_or_copy(good: Found, out: Path, progress_every_s: float = 60.0) -> None:
    """Hard-link each image into `out` (instant, no space) when on the same filesystem, else copy."""
    jobs = [(p, out / name / p.name) for name, rows in good.items() for p, _, _ in rows]
    for name in good:
        (out / name).mkdir()
    for src, dst in track(jobs, len(jobs), "copying images", "img", every_s=progress_every_s):
        try:
            os.link(src, dst)
        except OSError:  # another filesystem (a Kaggle input mount), or links not allowed
            shutil.copyfile(src, dst)


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this member could write outside the target folder, or None when it cannot."""
    name = info.filename
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive or re.match(r"[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "climbs out of the folder with '..'"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return (f"unpacks {info.file_size // max(info.compress_size, 1)}x ({info.file_size:,} bytes): "
                "a zip bomb?")
    return None


def safe_extract(archive: Path, out: Path, keep: tuple[str, ...] = FOLDERS,
                 progress_every_s: float = 60.0) -> None:
    """Extract the JPEGs directly inside the `keep` folders of `archive` into `out`, after refusing the
    whole archive if any member has an absolute path, a '..' part, is a symlink, or is a zip bomb."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                problem = _member_problem(info)
                if problem:
                    raise UserError(f"{archive}: refusing to extract it: member '{info.filename}' {problem}")
            total = sum(i.file_size for i in infos)
            if total > MAX_ARCHIVE_BYTES:
                biggest = max(infos, key=lambda i: i.file_size)
                raise UserError(f"{archive}: refusing to extract it: its members unpack to "
                                f"{total / 2**30:.1f} GB "
                                f"(largest: '{biggest.filename}'), far more than this competition's data")
            wanted = [i for i in infos if not i.is_dir() and len(PurePosixPath(i.filename).parts) == 2
                      and PurePosixPath(i.filename).parts[0] in keep]
            for name in keep:
                (out / name).mkdir(parents=True, exist_ok=True)
            for info in track(wanted, len(wanted), "extracting", "file", every_s=progress_every_s):
                # zipfile stops at the declared size and checks the CRC, so a member cannot grow past it
                with zf.open(info) as src, open(out / info.filename, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{archive}: not a readable zip archive ({exc}); download it again") from None
