"""Searches: Optuna studies over Kaggle sessions and local GPUs. The search file (spec.py), its study in a
journal file (study.py); a sweep is a search whose trials are given (spec.from_sweep)."""
