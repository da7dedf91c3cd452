"""The model families' registry: one entry per family, the family itself, as it registers itself.

Config imports no family, yet parses their `[name]` sections, checks train.model and builds one field per
family of `Config.families`: so the registry lives here, below both, and holds each family as the little
config needs of it (`ModelSection`). Training reads the same entries as its `Family` objects
(pipeline/training/family.py), so there is one registry, never two kept in step. It is filled once per
process by `pipeline.plugins.load()`, which every entry point calls before it reads settings.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .sections import TrainConfig


class ModelSection(Protocol):
    """What config needs of a family: its name, its settings section (a frozen dataclass), and its checks
    across [train] and that section."""

    name: str
    settings: type

    def check(self, train: TrainConfig, settings: Any) -> None: ...


_REGISTRY: dict[str, ModelSection] = {}


def register_model(section: ModelSection) -> None:
    """Make `[section.name]` a settings section and `section.name` a value of train.model."""
    _REGISTRY[section.name] = section


def model_sections() -> dict[str, ModelSection]:
    """Every registered family by name, sorted."""
    if not _REGISTRY:
        raise RuntimeError("no model family is registered: call pipeline.plugins.load() (every entry point "
                           "does) before loading settings")
    return dict(sorted(_REGISTRY.items()))
