"""Model families as plug-ins: one folder each (cyclegan/, dcgan/, ...), and nothing else here.

The registry in pipeline/training/family.py imports each folder's light `__init__` (it registers the family
and its settings section); a family's networks (`networks.py`) and training step (`step.py`) are imported
only when a generator is built or training starts. Families never import each other (make lint checks it):
what two share lives beside the loop (training/networks.py, losses.py, trainer.py).
"""
