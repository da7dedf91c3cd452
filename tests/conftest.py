"""Fixtures; the helpers they and the tests share live in helpers.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_kaggle import serving
from helpers import TINY, make_data, make_jpegs, tiny_config, write_competition


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (make test: a worker per core and two more), each worker and the processes it starts
    compute on one thread: four workers of two threads each on two cores would spend their time swapping."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests first (in their order): the workers (`--dist load` hands tests out in this order) start
    the long ones early and fill the end with the short ones, rather than one finishing a long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def jpegs():
    return make_jpegs


@pytest.fixture
def config(tmp_path, request):
    """`config(*overrides) -> Config`: the demo preset on tiny data under tmp_path, made tiny by the test
    module's TINY (helpers.TINY where it has none), then `overrides`. The data: 8 paintings and 10 photos of
    40 px, or as many as the module's DATA = (paintings, photos) says."""
    make_data(tmp_path, *getattr(request.module, "DATA", ()))
    tiny = getattr(request.module, "TINY", TINY)
    return lambda *overrides: tiny_config(tmp_path, *tiny, *overrides)


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
def step_clock():
    """A clock for the training loop (`loop.build(cfg, out, clock=step_clock)`) moved 0.1 s by every step,
    whatever this machine's load."""
    from pipeline.training.clock import StepClock

    return StepClock(0.1)


@pytest.fixture(autouse=True)
def no_real_kaggle(monkeypatch):
    """Nothing in the tests may reach the real Kaggle, whatever this machine's environment says: any https
    request goes to a dead port (the fake Kaggle is reached over http, through http_proxy)."""
    for name in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch):
    """A running fake Kaggle (tests/fake_kaggle.py) with the real client pointed at it, in a temp working
    folder (the kernel stage writes kernels/<slug> there), without FID weights unless a test brings them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with serving(tmp_path, monkeypatch) as fake:
        yield fake
