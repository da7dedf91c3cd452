"""Model families as plug-ins: one folder each (cyclegan/, dcgan/, ...), found by the registry in base.py.

Light on purpose: this package, base.py and every family's `__init__.py`/`settings.py` import no torch, so
settings load and stages check their cache fast; a family's networks (`networks.py`) and training step
(`step.py`) are imported only when a generator is built or training starts. See base.py for the contract
and trainer.py for what every family's training step shares (optimisers, schedules, scaler, DDP wrapping).
"""
from .base import (
    BANKS,
    NOISE,
    PHOTO,
    Family,
    families,
    family_names,
    get_family,
    option,
    register_family,
    require,
    unregister_family,
)

__all__ = ["BANKS", "NOISE", "PHOTO", "Family", "families", "family_names", "get_family", "option",
           "register_family", "require", "unregister_family"]
