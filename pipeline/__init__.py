"""The Monet submission pipeline (python -m pipeline).

Importing the package wires its plug-ins, so that whatever then runs (the CLI, the Kaggle notebook, a test)
sees them all while the layers below know none of them:
- the model families (pipeline/training/families/: one folder each) register their settings sections with
  config, which imports no family;
- the Kaggle API registers how the `kaggle` download source fetches the competition's archive, so the
  download stage's code (and cache key) holds none of the client.
"""
from .data.sources import register_archive_source
from .kaggle.api import download_competition
from .training.family import discover

discover()
register_archive_source("kaggle", download_competition)
