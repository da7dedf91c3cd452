"""The plug-ins, wired once per process: what the layers below know only by registration.

- the model families (pipeline/training/families/: one folder each) register themselves in config's registry
  (config imports no family);
- the Kaggle API registers how the `kaggle` download source fetches the competition's archive, so the
  download stage's code (and cache key) holds none of the client.

Every entry point calls `load()` before it reads settings: the CLI (`python -m pipeline`), a local sweep's
variant process, the benchmarks and the Kaggle notebook's first code cell. Importing a module wires nothing.
"""
from __future__ import annotations

import functools

from .data.sources import register_archive_source
from .kaggle.api import download_competition
from .training.family import discover


@functools.cache  # once per process
def load() -> None:
    """Register every model family and the `kaggle` archive source."""
    discover()
    register_archive_source("kaggle", download_competition)
