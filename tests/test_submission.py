"""The zip stage and checker: valid sets become a flat stored archive; each broken rule is refused by name."""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, make_jpegs, tiny_config
from PIL import Image

from pipeline.engine.errors import UserError
from pipeline.stages import STAGES
from pipeline.submission.archive import check_zip, command

# A submission of 7..10 images of 32x32 stands in for Kaggle's 7,000..10,000 of 256x256.
RULES = ("zip.min_images=7", "zip.max_images=10", "zip.image_size=32", "generate.count=8",
         "zip.decode_sample=3")


@pytest.fixture
def cfg(tmp_path):
    return tiny_config(tmp_path, *RULES)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def jpeg_bytes(n: int, tmp_path: Path, size: int = 32, mode: str = "RGB") -> dict[str, bytes]:
    files = make_jpegs(tmp_path / f"src-{n}-{size}-{mode}", n, size=size, mode=mode)
    return {p.name: p.read_bytes() for p in files}


def test_valid_set_zips_flat_with_one_entry_per_jpeg(cfg):
    files = make_jpegs(cfg.images_dir, 8)
    (cfg.images_dir / ".preview.png").write_bytes(b"hidden bookkeeping is never submitted")
    out = STAGES["zip"].run(cfg)
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(p.name for p in files)
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        for p in files:  # bytes unchanged: what was generated is exactly what is submitted
            assert zf.read(p.name) == p.read_bytes()
    assert check_zip(out, cfg.zip).images == 8


def test_zip_is_deterministic(cfg, tmp_path):
    make_jpegs(cfg.images_dir, 8)
    first = STAGES["zip"].run(cfg).read_bytes()
    assert STAGES["zip"].run(cfg, force=True).read_bytes() == first


def test_failed_zip_leaves_previous_images_zip_untouched(cfg):
    make_jpegs(cfg.images_dir, 8)
    out = STAGES["zip"].run(cfg)
    before = out.read_bytes()
    make_jpegs(cfg.images_dir, 1, size=31, prefix="bad")  # now 9 files, one of them 31x31
    with pytest.raises(UserError, match=r"bad0000\.jpg.*31x31, expected 32x32"):
        STAGES["zip"].run(cfg)
    assert out.read_bytes() == before
    assert not [p.name for p in out.parent.iterdir() if ".tmp-" in p.name]  # no temp file left behind


@pytest.mark.parametrize("extra, message", [
    ({"sub": "dir"}, r"1 subfolder\(s\).*sub"),
    ({"x.png": "png"}, r"not \.jpg/\.jpeg: x\.png"),
])
def test_stage_refuses_folder_that_is_not_flat_jpegs(cfg, extra, message):
    make_jpegs(cfg.images_dir, 8)
    for name, kind in extra.items():
        if kind == "dir":
            (cfg.images_dir / name).mkdir()
        else:
            Image.new("RGB", (32, 32)).save(cfg.images_dir / name, "PNG")
    with pytest.raises(UserError, match=message):
        STAGES["zip"].run(cfg)
    assert not cfg.zip_path.exists()


def test_check_accepts_valid_zip(cfg, tmp_path):
    summary = check_zip(write_zip(tmp_path / "ok.zip", jpeg_bytes(7, tmp_path)), cfg.zip)
    assert (summary.images, summary.decoded) == (7, 7)


@pytest.mark.parametrize("n, message", [(6, r"6 images, the competition needs 7-10"),
                                        (11, r"11 images, the competition needs 7-10")])
def test_check_refuses_wrong_count(cfg, tmp_path, n, message):
    with pytest.raises(UserError, match=message):
        check_zip(write_zip(tmp_path / "n.zip", jpeg_bytes(n, tmp_path)), cfg.zip)


def png_bytes(size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 90, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def odd_jpeg(width: int, height: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("name, data, message", [
    ("odd.jpg", odd_jpeg(31, 32), r"odd\.jpg \(31x32, expected 32x32\)"),
    ("fake.jpg", png_bytes(), r"fake\.jpg \(not a JPEG \(PNG data\)\)"),
    ("real.png", png_bytes(), r"not named \.jpg/\.jpeg: real\.png"),
    ("gray.jpg", odd_jpeg(32, 32, "L"), r"gray\.jpg \(colour mode L, expected RGB"),
    ("cmyk.jpg", odd_jpeg(32, 32, "CMYK"), r"cmyk\.jpg \(colour mode CMYK"),
    ("folder/nested.jpg", odd_jpeg(32, 32), r"inside folders.*folder/nested\.jpg"),
    ("folder/", b"", r"inside folders.*folder/"),
    ("notes.txt", b"hello", r"not named \.jpg/\.jpeg: notes\.txt"),
    ("junk.jpg", b"\xff\xd8 truncated", r"junk\.jpg \(not a decodable image"),
])
def test_check_refuses_each_broken_rule_naming_the_member(cfg, tmp_path, name, data, message):
    members = jpeg_bytes(8, tmp_path) | {name: data}  # 8 good images keep the count valid either way
    with pytest.raises(UserError, match=message):
        check_zip(write_zip(tmp_path / "bad.zip", members), cfg.zip)


def test_check_refuses_duplicate_names_and_non_zip(cfg, tmp_path):
    members = jpeg_bytes(8, tmp_path)
    path = write_zip(tmp_path / "dup.zip", members)
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as zf:  # zipfile warns but allows it
        zf.writestr("img0000.jpg", members["img0000.jpg"])
    with pytest.raises(UserError, match=r"duplicate name\(s\): img0000\.jpg"):
        check_zip(path, cfg.zip)
    (tmp_path / "not.zip").write_bytes(b"plain text")
    with pytest.raises(UserError, match="not a readable zip"):
        check_zip(tmp_path / "not.zip", cfg.zip)


def test_check_lists_many_bad_files_with_a_count(cfg, tmp_path):
    members = {f"g{i}.jpg": odd_jpeg(32, 32, "L") for i in range(8)}
    with pytest.raises(UserError, match=r"8 image\(s\) not 32x32 RGB JPEGs: .*; and 3 more"):
        check_zip(write_zip(tmp_path / "gray.zip", members), cfg.zip)


def test_check_prints_ok_and_plain_zip_runs_the_stage(cfg, tmp_path, capsys):
    from pipeline.cli import main

    path = write_zip(tmp_path / "ok.zip", jpeg_bytes(7, tmp_path))
    assert command(cfg, argparse.Namespace(check=str(path), force=False)) == 0
    assert "OK (7 images" in capsys.readouterr().out
    make_jpegs(cfg.images_dir, 7)
    assert main(cli(tmp_path, "zip", *RULES)) == 0
    assert check_zip(cfg.zip_path, cfg.zip).images == 7


def test_cli_check_exit_code_2_on_bad_zip(tmp_path, capsys):
    from pipeline.cli import main

    path = write_zip(tmp_path / "few.zip", jpeg_bytes(3, tmp_path, size=256))
    assert main(["zip", "--check", str(path)]) == 2
    assert "3 images, the competition needs 7,000-10,000" in capsys.readouterr().err
