"""The download stage's kaggle source end to end: the real `kaggle` client, the fake Kaggle, safe
extraction."""
from __future__ import annotations

import io
import zipfile

import pytest
from fake_kaggle import zip_bytes
from helpers import tiny_config

from pipeline.cli import main
from pipeline.engine.errors import UserError
from pipeline.stages import STAGES

TINY = ("download.source=kaggle", "download.image_size=32", "download.expect_monet=3",
        "download.expect_photos=4")


@pytest.fixture
def archive(tmp_path, jpegs, fake_kaggle):
    """The competition's archive in miniature: monet_jpg/, photo_jpg/ and a TFRecord folder that is not
    kept."""
    root = tmp_path / "archive"
    jpegs(root / "monet_jpg", 3, seed=1)
    jpegs(root / "photo_jpg", 4, seed=2)
    (root / "monet_tfrec").mkdir()
    (root / "monet_tfrec" / "monet00-60.tfrec").write_bytes(b"not kept")
    fake_kaggle.competition_zip = zip_bytes(root)
    return root


def test_kaggle_source_downloads_extracts_and_validates(tmp_path, archive, fake_kaggle):
    cfg = tiny_config(tmp_path, *TINY)
    raw = STAGES["download"].run(cfg)
    for folder, n in (("monet_jpg", 3), ("photo_jpg", 4)):
        got = sorted(p.name for p in (raw / folder).iterdir())
        assert len(got) == n
        assert all((raw / folder / name).read_bytes() == (archive / folder / name).read_bytes()
                   for name in got)
    assert not (raw / "monet_tfrec").exists() and (raw / "manifest.json").is_file()
    assert fake_kaggle.calls == ["DownloadDataFiles", "files"]
    assert not list((cfg.cache_dir / "downloads").glob("*.zip"))  # the archive is not kept


def test_archive_with_a_parent_member_is_refused(tmp_path, jpegs, fake_kaggle):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in jpegs(tmp_path / "imgs", 4):
            zf.write(path, f"monet_jpg/{path.name}")
            zf.write(path, f"photo_jpg/{path.name}")
        zf.writestr("monet_jpg/../../../evil.jpg", b"outside")
    fake_kaggle.competition_zip = buf.getvalue()
    cfg = tiny_config(tmp_path, *TINY)
    with pytest.raises(UserError, match=r"\.\./"):
        STAGES["download"].run(cfg)
    assert not list(tmp_path.rglob("evil.jpg")) and not cfg.raw_dir.exists()


def test_wrong_counts_are_not_this_competition(tmp_path, archive):
    cfg = tiny_config(tmp_path, *TINY[:3])  # expects 7,038 photos
    with pytest.raises(UserError, match="expected 7,038"):
        STAGES["download"].run(cfg)
    assert not cfg.raw_dir.exists()


def test_rules_not_accepted_is_one_line_from_the_cli(tmp_path, archive, fake_kaggle, capsys):
    fake_kaggle.rules_accepted = False
    sets = [f"paths.data={tmp_path / 'data'}", *TINY]
    code = main(["download", "--config", "demo", *[arg for s in sets for arg in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "https://www.kaggle.com/competitions/gan-getting-started/rules" in err
    assert fake_kaggle.key not in err
