"""The model families' settings sections, as the families register them: config imports no family.

Each family (pipeline/training/families/<name>/) registers its `[name]` section class and its checks across
[train] and that section when its folder is imported; importing the `pipeline` package discovers every
family folder, so whatever loads settings knows them all. Config reads the registry to parse the sections,
to check train.model and to build the one field per family of `Config.families`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sections import TrainConfig


@dataclass(frozen=True)
class ModelSection:
    """One family's settings section: its class (a frozen dataclass) and its checks across [train] and it."""

    name: str
    settings: type
    check: Callable[[TrainConfig, Any], None]


_SECTIONS: dict[str, ModelSection] = {}


def register_model(name: str, settings: type, check: Callable[[TrainConfig, Any], None]) -> None:
    """Make `[name]` a settings section and `name` a value of train.model."""
    _SECTIONS[name] = ModelSection(name, settings, check)


def unregister_model(name: str) -> None:
    """Forget a family's section (tests that register a throwaway family)."""
    _SECTIONS.pop(name, None)


def model_sections() -> dict[str, ModelSection]:
    """Every registered family's section by name, sorted."""
    if not _SECTIONS:
        raise RuntimeError("no model family is registered: import the `pipeline` package (it discovers "
                           "pipeline/training/families/) before loading settings")
    return dict(sorted(_SECTIONS.items()))
