"""The download stage's demo and folder sources, validation of every image, and safe extraction.

The kaggle source against a fake Kaggle server is in test_download_kaggle.py.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from helpers import make_jpegs, tiny_config
from PIL import Image

from pipeline.data.download import safe_extract
from pipeline.engine.errors import UserError
from pipeline.stages import STAGES

DEMO = ("download.source=demo", "download.demo_monet=3", "download.demo_photos=5", "download.image_size=32")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.jpg"))}


def _source(tmp_path: Path, monet: int = 3, photos: int = 4) -> Path:
    src = tmp_path / "competition"
    make_jpegs(src / "monet_jpg", monet, seed=1, prefix="m")
    make_jpegs(src / "photo_jpg", photos, seed=2, prefix="p")
    return src


def _run(tmp_path: Path, *overrides: str, force: bool = False) -> Path:
    return STAGES["download"].run(tiny_config(tmp_path, *overrides), force=force)


def test_demo_source_counts_sizes_manifest_and_cache(tmp_path, capsys):
    raw = _run(tmp_path, *DEMO)
    files = _files(raw)
    assert (sum(k.startswith("monet_jpg/") for k in files) == 3
            and sum(k.startswith("photo_jpg/") for k in files) == 5)
    for rel in files:
        with Image.open(raw / rel) as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (32, 32))
    manifest = json.loads((raw / "manifest.json").read_text())
    assert {row["file"]: (row["size"], row["sha256"]) for row in manifest["files"]} == {
        rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in files.items()}
    capsys.readouterr()
    _run(tmp_path, *DEMO)
    assert "download: up to date" in capsys.readouterr().out


def test_demo_source_is_deterministic_and_follows_its_seed(tmp_path):
    first = _files(_run(tmp_path / "a", *DEMO))
    assert _files(_run(tmp_path / "b", *DEMO)) == first
    assert _files(_run(tmp_path / "c", *DEMO, "download.demo_seed=1")).values() != first.values()


def test_folder_source_copies_the_images_and_reports_other_counts(tmp_path, capsys):
    src = _source(tmp_path)
    raw = _run(tmp_path, f"download.source=dir:{src}", "download.image_size=32")
    assert _files(raw) == _files(src)
    err = capsys.readouterr().err
    assert ("monet_jpg/ holds 3 images, expected 300" in err
            and "photo_jpg/ holds 4 images, expected 7,038" in err)


def test_folder_source_reruns_when_a_source_image_changes(tmp_path, capsys):
    src = _source(tmp_path)
    _run(tmp_path, f"download.source=dir:{src}", "download.image_size=32")
    changed = src / "photo_jpg" / "p0001.jpg"
    changed.unlink()  # a new file, not an edit through a hard link the output may share
    make_jpegs(tmp_path / "new", 1, seed=9)[0].rename(changed)
    capsys.readouterr()
    raw = _run(tmp_path, f"download.source=dir:{src}", "download.image_size=32")
    assert "up to date" not in capsys.readouterr().out
    assert (raw / "photo_jpg" / "p0001.jpg").read_bytes() == changed.read_bytes()


@pytest.fixture
def kaggle_inputs(tmp_path, monkeypatch) -> Path:
    """A Kaggle notebook's input folder ($KAGGLE_ROOT/input) with the competition where Kaggle mounts it
    today, beside an attached dataset that holds only paintings."""
    monkeypatch.setenv("KAGGLE_ROOT", str(tmp_path / "kaggle"))
    inputs = tmp_path / "kaggle" / "input"
    _source(inputs / "competitions", 2, 2).rename(inputs / "competitions" / "gan-getting-started")
    make_jpegs(inputs / "datasets" / "you" / "paintings" / "monet_jpg", 1)
    return inputs


@pytest.mark.parametrize("source", ["kaggle-input", "auto"])
def test_inside_kaggle_the_competition_is_read_where_it_is_mounted(tmp_path, kaggle_inputs, monkeypatch,
                                                                   source):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")  # what `auto` looks for; kaggle-input needs none
    raw = _run(tmp_path, f"download.source={source}", "download.image_size=32")
    assert _files(raw) == _files(kaggle_inputs / "competitions" / "gan-getting-started")


def test_kaggle_input_without_the_competition_says_what_is_mounted(tmp_path, kaggle_inputs):
    shutil.rmtree(kaggle_inputs / "competitions")
    with pytest.raises(UserError) as err:
        _run(tmp_path, "download.source=kaggle-input", "download.image_size=32")
    assert str(err.value) == (f"the competition data is not attached: no folder holding monet_jpg/ and "
                              f"photo_jpg/ under {kaggle_inputs} (found: datasets/you/paintings); add it "
                              "with Add Input → Competitions → gan-getting-started")


@pytest.fixture
def corrupt_and_gray(tmp_path) -> tuple[Path, Path, Path]:
    src = _source(tmp_path)
    corrupt = src / "monet_jpg" / "broken.jpg"
    corrupt.write_bytes((src / "monet_jpg" / "m0000.jpg").read_bytes()[:200])  # a truncated JPEG
    gray = make_jpegs(src / "photo_jpg", 1, mode="L", prefix="gray")[0]
    return src, corrupt, gray


def test_bad_images_stop_the_stage_naming_every_one(tmp_path, corrupt_and_gray):
    src, corrupt, gray = corrupt_and_gray
    cfg = tiny_config(tmp_path, f"download.source=dir:{src}", "download.image_size=32")
    with pytest.raises(UserError) as err:
        STAGES["download"].run(cfg)
    message = str(err.value)
    assert "\n" not in message and "2 bad image(s)" in message and "skip_bad" in message
    assert f"{corrupt} (not a decodable image" in message and f"{gray} (colour mode L" in message
    assert not cfg.raw_dir.exists()


def test_skip_bad_completes_and_lists_them(tmp_path, corrupt_and_gray, capsys):
    src, corrupt, gray = corrupt_and_gray
    raw = _run(tmp_path, f"download.source=dir:{src}", "download.image_size=32", "download.skip_bad=true")
    out = capsys.readouterr().out
    assert f"{corrupt}: not a decodable image" in out and f"{gray}: colour mode L" in out
    assert "2 bad skipped" in out
    kept = _files(raw)
    assert len(kept) == 7 and "monet_jpg/broken.jpg" not in kept and "photo_jpg/gray0000.jpg" not in kept
    skipped = json.loads((raw / "manifest.json").read_text())["skipped"]
    assert sorted(row["file"] for row in skipped) == sorted([str(corrupt), str(gray)])


def test_wrong_size_is_named_with_its_size(tmp_path):
    src = _source(tmp_path)
    big = make_jpegs(src / "photo_jpg", 1, size=40, prefix="big")[0]
    with pytest.raises(UserError, match=rf"{big} \(40x40, expected 32x32\)"):
        _run(tmp_path, f"download.source=dir:{src}", "download.image_size=32")


def test_empty_and_missing_folders_are_named(tmp_path):
    src = _source(tmp_path)
    for f in (src / "photo_jpg").iterdir():
        f.unlink()
    with pytest.raises(UserError, match=rf"{src / 'photo_jpg'}: no \.jpg"):
        _run(tmp_path, f"download.source=dir:{src}", "download.image_size=32")
    (src / "photo_jpg").rmdir()
    with pytest.raises(UserError, match=rf"{src / 'photo_jpg'}: folder not found"):
        _run(tmp_path, f"download.source=dir:{src}", "download.image_size=32")


def test_unknown_source_is_a_setting_error(tmp_path):
    with pytest.raises(UserError,
                       match="download.source must be auto, kaggle, kaggle-input, demo or dir:PATH"):
        tiny_config(tmp_path, "download.source=ftp")


# ---------------------------------------------------------------- safe extraction
def _zip(tmp_path: Path, members: dict[str, bytes], symlink: str = "") -> Path:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 100, 50)).save(buf, "JPEG")
    return buf.getvalue()


def test_extraction_keeps_only_the_jpeg_folders(tmp_path):
    archive = _zip(tmp_path, {"monet_jpg/a.jpg": _jpeg(), "photo_jpg/b.jpg": _jpeg(),
                              "monet_tfrec/x.tfrec": b"records", "README.txt": b"hi"})
    safe_extract(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
                  if p.is_file()) == ["monet_jpg/a.jpg", "photo_jpg/b.jpg"]


@pytest.mark.parametrize("member, reason", [
    ("monet_jpg/../../escape.jpg", "climbs out of the folder"),
    ("/tmp/absolute.jpg", "has an absolute path"),
    ("C:/windows/absolute.jpg", "has an absolute path"),
])
def test_extraction_refuses_members_that_leave_the_folder(tmp_path, member, reason):
    archive = _zip(tmp_path, {"monet_jpg/a.jpg": _jpeg(), member: b"payload"})
    with pytest.raises(UserError, match=f"member '{member}' {reason}"):
        safe_extract(archive, tmp_path / "deep" / "out")
    assert not (tmp_path / "deep" / "out" / "monet_jpg" / "a.jpg").exists()  # refused before writing anything
    assert not list(tmp_path.rglob("escape.jpg")) and not Path("/tmp/absolute.jpg").exists()


def test_extraction_refuses_symlinks_and_zip_bombs(tmp_path):
    with pytest.raises(UserError, match="member 'monet_jpg/link.jpg' is a symbolic link"):
        safe_extract(_zip(tmp_path, {"monet_jpg/a.jpg": _jpeg()}, symlink="monet_jpg/link.jpg"),
                     tmp_path / "o1")
    bomb = _zip(tmp_path, {"photo_jpg/bomb.jpg": bytes(4 << 20)})  # 4 MB of zeros deflate to ~4 KB
    with pytest.raises(UserError, match="member 'photo_jpg/bomb.jpg' unpacks .*zip bomb"):
        safe_extract(bomb, tmp_path / "o2")


def test_a_corrupt_archive_is_a_user_error(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="not a readable zip archive"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")
