"""Bad input tried on purpose: broken image files, bad settings, and the archive rules.

Every bad file is named in one line with its reason (exit code 2, no traceback), and download.skip_bad leaves
it out and lists it. Cases already covered elsewhere are not repeated here: a truncated or grayscale JPEG, a
wrong size and empty or missing folders (test_download.py); zip members with '..', absolute paths, symlinks
and zip bombs (test_download.py); what the output zip may hold (test_submission.py).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, make_jpegs, one_line_error, save_generator, tiny_config
from PIL import Image

from pipeline.cli import main
from pipeline.config import Config, load_config
from pipeline.engine.errors import UserError

# Spaces and non-ASCII letters in every path the tests use: they must reach the messages unchanged.
ODD = "Mönet – données ✓"


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", **options)
    return buf.getvalue()


def _noise_10mb(path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (2300, 2300, 3), dtype=np.uint8)
    path.write_bytes(jpeg_bytes(Image.fromarray(pixels), quality=100))
    assert path.stat().st_size > 10_000_000


def _png(path: Path) -> None:
    Image.new("RGB", (256, 256), (20, 120, 200)).save(path, "PNG")  # a PNG under a .jpg name


BAD_FILES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    # case: (file name, how to make it, the reason the message gives)
    "empty": ("empty.jpg", lambda p: p.write_bytes(b""), r"empty file \(0 bytes\)"),
    "png-named-jpg": ("really a png.jpg", _png, r"not a JPEG \(PNG data\)"),
    "cmyk": ("cmyk.jpg", lambda p: p.write_bytes(jpeg_bytes(Image.new("CMYK", (256, 256), (0, 50, 90, 10)))),
             r"colour mode CMYK, expected RGB"),
    "255x256": ("narrow.jpg", lambda p: p.write_bytes(jpeg_bytes(Image.new("RGB", (255, 256), (90, 90, 90)))),
                r"255x256, expected 256x256"),
    "10mb-noise": ("noise.jpg", _noise_10mb, r"2300x2300, expected 256x256"),
    "5000px": ("huge.jpg", lambda p: p.write_bytes(jpeg_bytes(Image.new("RGB", (5000, 5000), (9, 9, 9)))),
               r"5000x5000 is far too large, expected 256x256"),
    "not-an-image": ("notes.jpg", lambda p: p.write_text("just some text\n" * 20), r"not a decodable image"),
    "symlink-loop": ("loop.jpg", lambda p: os.symlink(p.name, p),
                     r"cannot be read \(Too many levels of symbolic"),
    "dangling-symlink": ("gone.jpg", lambda p: os.symlink("nowhere.jpg", p),
                         r"cannot be read \(No such file"),
    "unicode-name": ("Seerosen – étude ✓ 2.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff\xe0 cut short"),
                     r"not a decodable image"),
}


@pytest.mark.parametrize("case, folder", [(case, "photo_jpg") for case in BAD_FILES]
                         + [(case, "monet_jpg") for case in ("empty", "cmyk", "symlink-loop")])
def test_each_bad_file_is_named_in_one_line_and_skip_bad_lists_it(tmp_path, capsys, case, folder):
    base, src = tmp_path / ODD, tmp_path / ODD / "the competition's data"
    good = (make_jpegs(src / "monet_jpg", 2, size=256, prefix="m ü")
            + make_jpegs(src / "photo_jpg", 2, size=256, seed=1, prefix="p ✓"))
    name, make, reason = BAD_FILES[case]
    bad = src / folder / name
    make(bad)
    settings = (f'download.source="dir:{src}"', "download.image_size=256")

    assert main(cli(base, "download", *settings)) == 2
    err = one_line_error(capsys)
    assert re.search(rf"1 bad image\(s\) in folder .*: {re.escape(str(bad))} \({reason}", err), err
    assert not (base / "data" / "raw").exists()  # refused before anything was written

    assert main(cli(base, "download", *settings, "download.skip_bad=true")) == 0
    out = capsys.readouterr().out
    assert re.search(rf"{re.escape(str(bad))}: {reason}", out) and "1 bad skipped" in out
    raw = base / "data" / "raw"
    kept = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.jpg"))
    assert kept == sorted(p.relative_to(src).as_posix() for p in good)
    assert [row["file"] for row in json.loads((raw / "manifest.json").read_text())["skipped"]] == [str(bad)]


def test_skip_bad_still_refuses_a_folder_left_without_any_image(tmp_path, capsys):
    src = tmp_path / "src"
    gray = make_jpegs(src / "monet_jpg", 2, mode="L", prefix="gray")
    make_jpegs(src / "photo_jpg", 2, seed=1)
    assert main(cli(tmp_path, "download", f'download.source="dir:{src}"', "download.image_size=32",
                    "download.skip_bad=true")) == 2
    err = one_line_error(capsys)
    assert f"no good image left in monet_jpg/ of folder {src} once 2 bad image(s) are skipped" in err
    assert str(gray[0]) in err and not (tmp_path / "data" / "raw").exists()


# ---------------------------------------------------------------- bad input to later stages
GENERATE = ("zip.image_size=32", "zip.min_images=1", "zip.max_images=50", "generate.count=5",
            "cyclegan.ngf=4", "cyclegan.n_blocks=1", "hardware.device=cpu", "hardware.workers=2",
            "generate.batch_size=2")


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xd8\xff\xe0 a JPEG cut short", "not a decodable image"),
    (b"plain text, not a photo", "not a decodable image"),
    (None, "cannot be read (Too many levels of symbolic links)"),
    (jpeg_bytes(Image.new("RGB", (40, 40))), "40x40, but photo0000.jpg beside it is 32x32"),
], ids=["truncated", "text", "symlink-loop", "other-size"])
def test_generate_names_a_bad_photo_in_one_line(tmp_path, capsys, data, reason):
    base = tmp_path / ODD
    cfg = tiny_config(base, *GENERATE)
    make_jpegs(cfg.raw_dir / "photo_jpg", 4, size=32, prefix="photo")
    bad = cfg.raw_dir / "photo_jpg" / "photo0000_✓ bad.jpg"  # second in its batch of two
    bad.write_bytes(data) if data is not None else os.symlink(bad.name, bad)
    save_generator(cfg)
    assert main(cli(base, "generate", *GENERATE)) == 2
    assert f"{bad}: {reason}" in one_line_error(capsys)
    assert not cfg.images_dir.exists() and not list(cfg.submissions_dir.glob(".*.tmp-*"))


def test_score_names_a_bad_image_in_one_line(tmp_path, capsys, inception_weights):
    made, real = tmp_path / ODD / "made", tmp_path / ODD / "real"
    make_jpegs(made, 3, size=32)
    make_jpegs(real, 3, size=32, seed=5)
    (made / "junk ✓.jpg").write_bytes(b"\xff\xd8 not really")
    argv = cli(tmp_path, "score", f'score.weights="{inception_weights}"', "hardware.device=cpu")
    assert main([*argv, "--images", str(made), "--real", str(real)]) == 2
    assert f"{made}:junk ✓.jpg: not a decodable image" in one_line_error(capsys)
    assert not list(made.parent.glob("*.score.json"))


# ---------------------------------------------------------------- bad settings
def _int_settings() -> list[str]:
    """Every integer setting of every section, as section.key."""
    return [f"{section.name}.{f.name}" for section in dataclasses.fields(Config) if section.name != "preset"
            for f in dataclasses.fields(section.default_factory())  # type: ignore[misc]
            if f.type in ("int", int)]


def test_every_integer_setting_refuses_a_negative_value_naming_it():
    keys = _int_settings()
    assert (len(keys) > 30 and "train.seed" in keys and "zip.decode_sample" in keys
            and "hardware.workers" in keys)
    for key in keys:
        section, name = key.split(".")
        with pytest.raises(UserError) as info:
            load_config("demo", [f"{key}=-1"])
        # a combined key such as "submit.retries/version" names each of its settings
        assert re.search(rf"^setting {section}\.(\S*/)?{name}\b\S* must (be|satisfy) .*\d",
                         str(info.value)), key


def test_a_bad_setting_is_refused_before_any_work(tmp_path, capsys):
    assert main(cli(tmp_path, "train", "train.select_photos=-1")) == 2
    assert "setting train.select_photos must be >= 0" in one_line_error(capsys)
    assert main(cli(tmp_path, "generate", "generate.count=10001")) == 2
    assert "setting generate.count must be in 7000..10000 (a submission holds 7,000-10,000 images)" in \
        one_line_error(capsys)
    assert main(cli(tmp_path, "download", "download.demo_photos=0")) == 2
    assert "download.demo_monet/demo_photos must be >= 1" in one_line_error(capsys)
    assert not list(tmp_path.iterdir())  # nothing was created: no data folder, no lock, no cache
