"""Sweeps: several variants of a recipe run side by side, scored the same way, the best one submitted
(command.py; the sweep file: spec.py; where it stands: state.py; the backends: local.py, kaggle.py)."""
