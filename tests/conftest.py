"""Shared fixtures: tiny real JPEGs and settings that point every path into a temp folder."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import Config, load_config

# Nothing in the tests may reach the real Kaggle: any https request goes to a dead port.
os.environ.setdefault("https_proxy", "http://127.0.0.1:9")


def make_jpegs(folder: Path, n: int, size: int = 32, seed: int = 0, mode: str = "RGB",
               prefix: str = "img") -> list[Path]:
    """`n` smooth random JPEGs of size x size (smooth so that JPEG keeps them recognisable)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(coarse, "RGB").resize((size, size), Image.BILINEAR)
        path = folder / f"{prefix}{i:04d}.jpg"
        img.convert(mode).save(path, "JPEG", quality=95)
        paths.append(path)
    return paths


def tiny_config(tmp_path: Path, *overrides: str, preset: str = "demo") -> Config:
    """The demo preset with data and submissions under tmp_path, plus `section.key=value` overrides."""
    base = [f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}"]
    return load_config(preset, [f'{o.split("=", 1)[0]}="{o.split("=", 1)[1]}"'
                                if o.startswith("paths.") else o
                                for o in base] + list(overrides))


def cli(base: Path, stage: str, *sets: str, preset: str = "demo") -> list[str]:
    """argv for `python -m pipeline <stage>` (or main()) with data and submissions under `base`, plus
    overrides."""
    paths = (f'paths.data="{base / "data"}"', f'paths.submissions="{base / "submissions"}"')
    return [stage, "--config", preset, *[arg for s in (*paths, *sets) for arg in ("--set", s)]]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The error line of a CLI call that failed as a user error: exactly one, no traceback (progress bars,
    which redraw with \\r, and retry notes may surround it)."""
    err = capsys.readouterr().err
    lines = [line for line in re.split(r"[\r\n]+", err) if ": error: " in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def jpegs():
    return make_jpegs


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> Path:
    """A calibrated random FID-Inception weights file in the real file's format (built once, ~2 s)."""
    from inception_weights import make_inception_weights  # tests/ is on sys.path (rootdir conftest)

    return make_inception_weights(tmp_path_factory.mktemp("inception") / "pt_inception-test.pth")
