"""The model-family contract and its registry. Imports no torch: the stage list, the CLI and the notebook
use it.

A family is declared in two halves, so that loading settings and checking whether a stage is up to date
never import torch:

- `Family` (this module): what everything outside training needs to know. Its folder's `__init__.py`
  subclasses it and registers it with `@register_family("name")`; that file and its `settings.py` import
  nothing heavy.
- the heavy half, named by "module:name" strings (".networks:make_generator": a module of the family's own
  folder) that the registry imports only when asked: `generator`, a function (TrainConfig, settings) ->
  nn.Module that generate uses to rebuild a checkpoint's generator, and `trainer`, a
  `training.trainer.Trainer` subclass (the networks, optimisers and one training step).

Discovery: `discover()` imports every subpackage of pipeline/training/families/ (only its light `__init__`),
once per process, called by `pipeline.plugins.load()` at every entry point; so adding a family is one new
folder that touches no other file. The registry is config's (pipeline/config/models.py: config imports no
family, yet reads their sections): registering a family puts the Family object itself there, and
`families()` reads it back.

How to write one, in the order the loop asks: `images_per_step` (which banks, how many images per step and
rank; it also fixes the epoch length), `total_steps` (the run's nominal length), `data_size` (the
resolution the banks are loaded at), the trainer's
`train_step`, `sample_inputs`/`sample` (progress grids) and `translate` (MiFID selection), `architecture`
(what a resume compares) and `generator_key` (which network generate uses). A family that grows its
resolution or batch by phase (ProGAN) chooses both here and in its step, not in the loop.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from ..config import TrainConfig, model_sections, register_model
from ..config import require as require  # the one settings check; a family's settings take it from here
from ..engine.errors import UserError

if TYPE_CHECKING:
    from ..config import Config

PHOTO, NOISE = "photo", "noise"  # what a family's generator maps from (Family.maps_from)
BANKS = ("monet", "photo")  # the image banks a family may draw from: augmented Monets, photos
S = TypeVar("S")  # a family's settings section (its frozen dataclass)


def option(default: Any, help: str) -> Any:
    """A settings field with its meaning kept where `python -m pipeline families --settings` reads it."""
    return field(default=default, metadata={"help": help})


class Family(ABC, Generic[S]):
    """One model family, as the settings, the CLI, the stage list, generate and the loop see it.

    Declare (register_family checks they are set): `maps_from` (PHOTO or NOISE), `description` (one
    sentence), `settings` (a frozen dataclass: the `[name]` section, with `option` fields and its own checks
    in __post_init__) and `trainer` ("module:Class", see the module docstring); `generator`
    ("module:function", default `.networks:make_generator`) and `generator_key` (default "G") have defaults.
    Implement
    `images_per_step` and `architecture`; override the rest where the default does not fit.
    """

    name: ClassVar[str] = ""  # set by register_family
    maps_from: ClassVar[str] = ""  # PHOTO (translates photos) | NOISE (samples from noise_dim-long noise)
    maps_to: ClassVar[str] = "monet"
    description: ClassVar[str] = ""
    good_for: ClassVar[str] = ""  # when to choose it (README's table)
    settings: ClassVar[type[Any]] = type(None)
    # "module:function": (TrainConfig, settings) -> the generator nn.Module
    generator: ClassVar[str] = ".networks:make_generator"
    trainer: ClassVar[str] = ""  # "module:Class": its training.trainer.Trainer subclass
    generator_key: ClassVar[str] = "G"  # the generator's name in a checkpoint's "models"

    @abstractmethod
    def images_per_step(self, train: TrainConfig, settings: S) -> dict[str, int]:
        """Images drawn from each bank (BANKS) per step and rank; known before the trainer is built."""

    @abstractmethod
    def architecture(self, train: TrainConfig, settings: S) -> dict[str, Any]:
        """The settings that decide the networks' shapes: a checkpoint made with others cannot be resumed."""

    def noise_dim(self, settings: S) -> int:
        """The noise vector's length for a NOISE family (generate feeds torch.randn(n, noise_dim)): its
        settings' z_dim; 0 for a PHOTO family."""
        return int(settings.z_dim) if self.maps_from == NOISE else 0  # type: ignore[attr-defined]

    def total_steps(self, train: TrainConfig, settings: S, steps_per_epoch: int) -> int:
        """The run's nominal length in steps (a time budget may plan fewer): train.epochs epochs, unless the
        family's own schedule decides (ProGAN: its phases)."""
        return train.epochs * steps_per_epoch

    def length(self, train: TrainConfig, settings: S) -> str:
        """The run's nominal length in words for the notebook's settings cell, in `total_steps`' unit."""
        return f"{train.epochs} epochs"

    def step_cost(self, train: TrainConfig, settings: S, progress: float) -> float | None:
        """A step's relative cost at `progress`, where steps differ (ProGAN's grow with the resolution): a
        time budget then plans by work, not by steps. None: every step costs the same."""
        return None

    def data_size(self, train: TrainConfig, settings: S) -> int:
        """The resolution training images are loaded at (random crops when smaller than the data's)."""
        return train.image_size

    def check(self, train: TrainConfig, settings: S) -> None:  # noqa: B027 - optional: most families need none
        """Checks across train.* and the family's section (each alone checks itself in __post_init__)."""

    def extra_inputs(self, cfg: Config) -> list[Path]:
        """Files training reads besides the banks (a teacher run's checkpoint): the train stage's key follows
        them, and the loop hands them to the trainer as `extra_inputs`. Most families read none."""
        return []

    def summary(self, settings: S) -> str:
        """A few words naming the model and its main options (notebook and kernel texts)."""
        return self.name

    def generate_steps(self, settings: S) -> int:
        """Passes of the generator per image at generate (generate.steps may ask for fewer): 1 for most."""
        return 1

    def for_generate(self, generator: Any, steps: int, seed: int) -> Any:
        """The loaded generator as generate runs it, given generate.steps and generate.seed: as it is for a
        family that translates in one pass; one that translates in several stochastic steps (UNSB) runs
        `steps` of them (0: as trained), its noise drawn from `seed`."""
        return generator

    # -- derived: no need to override ---------------------------------------------------------------------
    @property
    def takes_photos(self) -> bool:
        return self.maps_from == PHOTO

    def banks(self, train: TrainConfig, settings: S) -> list[str]:
        return list(self.images_per_step(train, settings))

    def heavy_modules(self) -> list[str]:
        """The modules of its generator and trainer: what a stage's cache key must follow besides imports."""
        return [self._module(self.generator), self._module(self.trainer)]

    def build_generator(self, train: TrainConfig, settings: S) -> Any:
        return self._load(self.generator)(train, settings)

    def trainer_class(self) -> Any:
        return self._load(self.trainer)

    def _module(self, target: str) -> str:
        """The absolute module of a "module:name" target (".networks" = in the family's own folder)."""
        return importlib.util.resolve_name(target.partition(":")[0], type(self).__module__)

    def _load(self, target: str) -> Any:
        return getattr(importlib.import_module(self._module(target)), target.partition(":")[2])

    def settings_from(self, values: dict[str, Any]) -> S:
        """The section from a dict (a checkpoint's), ignoring keys it does not know."""
        known = {f.name for f in dataclasses.fields(self.settings)}
        return self.settings(**{k: v for k, v in values.items() if k in known})


FAMILIES_PACKAGE = f"{__package__}.families"  # one subpackage per family, nothing else


def register_family(name: str) -> Any:
    """Class decorator: make a Family subclass known under `name` (the value of train.model)."""

    def register(cls: type[Family]) -> type[Family]:
        missing = [a for a in ("maps_from", "description", "trainer") if not getattr(cls, a)]
        if missing or not dataclasses.is_dataclass(cls.settings):
            raise TypeError(f"family {name}: declare {', '.join(missing) or 'settings (a frozen dataclass)'}")
        if cls.maps_from not in (PHOTO, NOISE):
            raise TypeError(f"family {name}: maps_from must be PHOTO or NOISE")
        cls.name = name
        register_model(cls())
        return cls

    return register


@functools.cache  # once per process
def discover() -> None:
    """Import every family folder's light __init__ (each registers itself)."""
    package = importlib.import_module(FAMILIES_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            importlib.import_module(f"{FAMILIES_PACKAGE}.{info.name}")


def families() -> dict[str, Family]:
    """Every registered family by name, sorted (register_family is the only writer of the registry)."""
    return cast("dict[str, Family]", model_sections())


def get_family(name: str) -> Family:
    found = families()
    if name not in found:
        raise UserError(f"unknown model family '{name}'; registered families: {', '.join(found)}")
    return found[name]
