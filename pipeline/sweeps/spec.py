"""A sweep file: a base recipe and the variants of it to run side by side, checked before anything runs.

```toml
preset = "kaggle"                        # the base: a preset ...
set = ["train.ema=0.999"]                # ... and its overrides
[[variant]]                              # either variants by name ...
name = "no-ema"
set = ["train.ema=0"]
[grid]                                   # ... or a grid: every combination is a variant
"train.lr" = [1e-4, 2e-4]
"cyclegan.generator" = ["unet", "resnet"]   # named "lr=0.0002,cyclegan.generator=unet"
```

The base itself runs too, as the variant `base`, so every row has its reference (a grid's combination that is
the base is that variant). Ready sweeps live in
pipeline/config/sweeps/ (`families`, `recipe`, `demo`); a sweep is named by one of them or by a path. Every
variant's settings are loaded (so an unknown key, a wrong value, fails here), and a variant that changes
nothing, or two that share a name (or the kernel slug it makes), are refused: one line each, naming the
variant.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, load_config, tomllib
from ..engine import text
from ..engine.errors import UserError

SWEEPS_DIR = Path(__file__).resolve().parents[1] / "config" / "sweeps"
BASE = "base"
MACHINE = ("sweep", "kernel", "paths", "submit", "download")  # how and where the sweep runs, and on what
KEYS = {"preset", "set", "description", "variant", "grid"}


@dataclass(frozen=True)
class Variant:
    name: str
    sets: tuple[str, ...]  # its own "section.key=value" items, on top of the base's
    changed: tuple[str, ...]  # what its resolved settings hold that the base's do not ("train.ema=0.0")

    @property
    def slug(self) -> str:
        return text.slug(self.name)


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    preset: str
    sets: tuple[str, ...]  # the base's items
    description: str
    variants: tuple[Variant, ...]  # the base first

    def settings(self, variant: Variant, extra: tuple[str, ...] = ()) -> Config:
        """A variant's settings: the base preset, the base's items, the variant's, then `extra`."""
        return load_config(self.preset, [*self.sets, *variant.sets, *extra])

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


def machine_items(items: tuple[str, ...] | list[str]) -> list[str]:
    """The items of `items` that say how and where the sweep runs, not what a variant trains."""
    return [i for i in items if i.split(".", 1)[0].strip() in MACHINE]


def read_file(spec: str, ready_dir: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """The file `spec` names, a ready one (`ready_dir`/<spec>.toml) or a path, and its TOML: of a sweep, or of
    a search (`kind` names which in messages)."""
    path = ready_dir / f"{spec}.toml"
    if not path.is_file():
        if not Path(spec).is_file():
            names = ", ".join(sorted(p.stem for p in ready_dir.glob("*.toml")))
            raise UserError(f"{kind} '{spec}': no such {kind} file; give one of: {names}, or the path of a "
                            "TOML file")
        path = Path(spec)
    try:
        return path, tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None


def load(spec: str, extra: tuple[str, ...] = ()) -> Sweep:
    """The sweep `spec` names, every variant checked (with `extra` items, as they will run)."""
    path, data = read_file(spec, SWEEPS_DIR, "sweep")
    name = path.stem
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise UserError(f"sweep {name}: unknown key(s) {', '.join(unknown)} in {path}; a sweep file holds: "
                        f"{', '.join(sorted(KEYS))}")
    preset, sets = str(data.get("preset", "kaggle")), _items(data.get("set", []), f"sweep {name}: set")
    base = _checked(name, BASE, preset, [*sets, *extra])
    variants = [Variant(BASE, (), ())]
    for vname, vsets in _declared(name, data):
        if vname == BASE or vname in (v.name for v in variants):
            raise UserError(f"sweep {name}: variant '{vname}' is named twice (or is named '{BASE}', the "
                            "base's own name): give each variant a name of its own")
        if text.slug(vname) in (v.slug for v in variants):
            raise UserError(f"sweep {name}: variant '{vname}' makes the same kernel slug as another "
                            f"('{text.slug(vname)}'): rename one")
        changed = differences(base, _checked(name, vname, preset, [*sets, *vsets, *extra]))
        if not changed and "grid" in data:  # the grid's combination that is the base: the base runs anyway
            print(f"sweep {name}: the grid's {vname} is the base itself: it runs once, as '{BASE}'")
            continue
        if not changed:
            raise UserError(f"sweep {name}: variant '{vname}' changes nothing from the base "
                            f"({', '.join(vsets)}): drop it, or change a setting")
        variants.append(Variant(vname, tuple(vsets), changed))
    return Sweep(name, path, preset, tuple(sets), str(data.get("description", "")), tuple(variants))


def _declared(name: str, data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The variants the file declares, by name: its [[variant]] tables or its [grid]'s combinations."""
    if "variant" in data and "grid" in data:
        raise UserError(f"sweep {name}: give either [[variant]] tables or a [grid], not both")
    if "grid" in data:
        grid = data["grid"]
        lists = isinstance(grid, dict) and all(isinstance(v, list) and v for v in grid.values())
        if not grid or not lists:
            raise UserError(f"sweep {name}: [grid] maps each setting to a list of values, e.g. "
                            '"train.lr" = [1e-4, 2e-4]')
        keys = list(grid)
        combinations = [list(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]
        return [(",".join(f"{k.removeprefix('train.')}={_text(v)}" for k, v in pairs),
                 [f"{k}={_text(v)}" for k, v in pairs]) for pairs in combinations]
    declared = []
    for i, table in enumerate(data.get("variant", [])):
        if not isinstance(table, dict) or not str(table.get("name", "")).strip():
            raise UserError(f"sweep {name}: variant #{i + 1} has no name: give it name = \"...\"")
        declared.append((str(table["name"]).strip(), _items(table.get("set", []), f"sweep {name}: variant "
                                                                                   f"'{table['name']}'")))
    if not declared:
        raise UserError(f"sweep {name}: no variants: add [[variant]] tables (name, set) or a [grid]")
    return declared


def _items(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise UserError(f'{where}: set must be a list of "section.key=value" strings')
    return list(value)


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) \
        else str(value)


def _checked(name: str, variant: str, preset: str, items: list[str]) -> Config:
    """The variant's settings, loaded: a bad key or value fails here, naming the variant."""
    try:
        return load_config(preset, items)
    except UserError as exc:
        raise UserError(f"sweep {name}: variant '{variant}': {exc}") from None


def flat(cfg: Config) -> dict[str, Any]:
    """Every setting by its key ("train.ema")."""
    return {f"{section}.{k}": v for section, values in cfg.sections().items()
            for k, v in dataclasses.asdict(values).items()}


def differences(base: Config, other: Config) -> tuple[str, ...]:
    """'section.key=value' for each setting `other` holds differently from `base`."""
    mine, theirs = flat(base), flat(other)
    return tuple(f"{k}={_as_set(theirs[k])}" for k in theirs if theirs[k] != mine.get(k))


def _as_set(value: object) -> str:
    """A value as --set takes it: true/false, "" for the empty string."""
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)
