"""The Monet submission pipeline (python -m pipeline).

Importing the package wires nothing: every entry point calls `pipeline.plugins.load()` once, which registers
the model families and the Kaggle archive source (pipeline/plugins.py).
"""
