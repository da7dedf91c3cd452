"""Fixtures; the helpers they and the tests share live in helpers.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import make_jpegs, write_competition

# Nothing in the tests may reach the real Kaggle: any https request goes to a dead port.
os.environ.setdefault("https_proxy", "http://127.0.0.1:9")


@pytest.fixture
def jpegs():
    return make_jpegs


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> Path:
    """A calibrated random FID-Inception weights file in the real file's format (built once, ~2 s)."""
    from inception_weights import make_inception_weights  # tests/ is on sys.path (rootdir conftest)

    return make_inception_weights(tmp_path_factory.mktemp("inception") / "pt_inception-test.pth")


@pytest.fixture(scope="session")
def competition(tmp_path_factory) -> Path:
    """The competition's folder (read only): 6 paintings, 10 photos, 32 px."""
    return write_competition(tmp_path_factory.mktemp("competition") / "gan-getting-started")


@pytest.fixture
def step_clock(monkeypatch):
    """The training loop's clock, moved 0.1 s by every CycleGAN step whatever this machine's load."""
    import types

    from pipeline.training import loop
    from pipeline.training.families.cyclegan.step import CycleGANTrainer

    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(monotonic=lambda: clock.now))
    real_step = CycleGANTrainer.train_step

    def step(self, batch, progress):
        clock.now += 0.1
        return real_step(self, batch, progress)

    monkeypatch.setattr(CycleGANTrainer, "train_step", step)
    return clock
