"""Fixtures; the helpers they and the tests share live in helpers.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import make_jpegs

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
