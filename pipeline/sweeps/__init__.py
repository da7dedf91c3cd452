"""Sweep files: a base recipe and its variants, checked before anything runs (spec.py). A sweep runs as a
search whose trials are given (pipeline/search/sweep.py)."""
