"""The stage contract: cache hit, miss on a setting or an input, --force, and interrupted runs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_jpegs, tiny_config

from pipeline.engine.fingerprint import fingerprint
from pipeline.engine.stage import Stage, read_stamp

CALLS: list[str] = []


def build_copy(cfg, out: Path) -> str:
    """A stage body for the tests: copies the input JPEGs, optionally dying half-way."""
    CALLS.append(str(out))
    out.mkdir()
    files = sorted((cfg.raw_dir / "monet_jpg").glob("*.jpg"))
    for i, f in enumerate(files):
        if cfg.augment.seed == 666 and i == len(files) // 2:
            raise KeyboardInterrupt  # a Ctrl-C in the middle of the stage
        (out / f.name).write_bytes(f.read_bytes())
    return f"{len(files)} files"


STAGE = Stage("copy", "test stage", build="test_stage:build_copy", output=lambda c: c.data_dir / "copy",
              inputs=lambda c: [c.raw_dir / "monet_jpg"], settings=lambda c: c.augment)


@pytest.fixture
def cfg(tmp_path):
    make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", 6)
    CALLS.clear()
    return tiny_config(tmp_path)


def test_second_run_is_up_to_date(cfg, capsys):
    out = STAGE.run(cfg)
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"img{i:04d}.jpg" for i in range(6)]
    STAGE.run(cfg)
    assert len(CALLS) == 1
    assert "copy: up to date" in capsys.readouterr().out
    assert read_stamp(out)["summary"] == "6 files"


def test_changed_setting_reruns(cfg, tmp_path):
    STAGE.run(cfg)
    STAGE.run(tiny_config(tmp_path, "augment.variants=2"))
    assert len(CALLS) == 2


def test_irrelevant_setting_does_not_rerun(cfg, tmp_path):
    STAGE.run(cfg)
    STAGE.run(tiny_config(tmp_path, "train.epochs=7", "hardware.device=cpu"))
    assert len(CALLS) == 1


def test_changed_input_file_reruns(cfg):
    out = STAGE.run(cfg)
    changed = cfg.raw_dir / "monet_jpg" / "img0003.jpg"
    make_jpegs(changed.parent, 1, seed=99, prefix="tmp")
    (changed.parent / "tmp0000.jpg").replace(changed)
    STAGE.run(cfg)
    assert len(CALLS) == 2
    assert (out / "img0003.jpg").read_bytes() == changed.read_bytes()


def test_force_reruns(cfg):
    STAGE.run(cfg)
    STAGE.run(cfg, force=True)
    assert len(CALLS) == 2


def test_interrupted_run_leaves_nothing_that_looks_done(cfg, tmp_path):
    good = STAGE.run(cfg)
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        STAGE.run(tiny_config(tmp_path, "augment.seed=666"))
    # The previous complete output is untouched and no temp folder is left behind.
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert [p.name for p in good.parent.iterdir() if ".tmp-" in p.name] == []
    # A first run that is interrupted leaves no output folder at all.
    good_parent = good.parent
    shutil.rmtree(good)
    with pytest.raises(KeyboardInterrupt):
        STAGE.run(tiny_config(tmp_path, "augment.seed=666"))
    assert not (good_parent / "copy").exists()


def test_fingerprint_memo_sees_content_changes(tmp_path):
    folder = tmp_path / "f"
    make_jpegs(folder, 3)
    cache = tmp_path / "cache"
    first = fingerprint(folder, cache)
    assert fingerprint(folder, cache) == first
    (folder / "img0001.jpg").write_bytes(b"changed")
    assert fingerprint(folder, cache) != first
    memo = json.loads(next((cache / "fingerprints").glob("*.json")).read_text())
    assert set(memo) == {"img0000.jpg", "img0001.jpg", "img0002.jpg"}


def test_up_to_date_check_does_not_import_torch(cfg):
    """The cache answers before any heavy import, so `up to date` costs well under a second."""
    STAGE.run(cfg)
    code = ("import sys; sys.path.insert(0, 'tests'); import test_stage as t; "
            "from helpers import tiny_config;"
            f"from pathlib import Path; t.STAGE.run(tiny_config(Path({str(cfg.data_dir.parent)!r})));"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[1])
    assert "copy: up to date" in result.stdout
    assert result.stdout.strip().endswith("False")
