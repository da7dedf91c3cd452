"""Loading settings: defaults, then a TOML preset, then `--set section.key=value` overrides, validated.

Unknown sections or keys and values of the wrong type are UserErrors that name the key and list the valid
ones, so a typo never silently falls back to a default. Old keys still work, with a notice (legacy.py).
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..engine.errors import UserError
from .legacy import renew_settings
from .models import model_sections
from .sections import Config, TrainConfig, family_sections_class

PRESETS_DIR = Path(__file__).parent / "presets"


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def load_config(preset: str = "default", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the preset's TOML, then each `section.key=value` override, validated."""
    path = PRESETS_DIR / f"{preset}.toml"
    if not path.is_file():
        path = Path(preset)
        if not path.is_file():
            raise UserError(f"unknown config preset '{preset}'; choose one of: "
                            f"{', '.join(available_presets())} "
                            "(or give the path of a TOML file)")
    try:
        values: dict[str, dict[str, Any]] = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    # Old keys are renamed within each layer (the preset, then the overrides), so that an override given
    # under an old name still overrides the preset's value under the new one.
    values = renew_settings(values)
    layer: dict[str, dict[str, Any]] = {}
    for item in overrides:
        section, key, raw = _split_override(item)
        layer.setdefault(section, {})[key] = _parse_value(raw)
    layer = renew_settings(layer)
    preset_train = dict(values.get("train", {}))
    for section, entries in layer.items():
        values.setdefault(section, {}).update(entries)
    _own_run_per_model(preset_train, layer.get("train", {}), values.setdefault("train", {}))
    return build_config(values, preset=preset)


KAGGLE_WORKING = "/kaggle/working"  # where a notebook's presets write: the mark of a preset for Kaggle


def load_for_kaggle(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The settings of a command that builds or pushes a notebook (`make submit CONFIG=kaggle-cut`): a preset
    written for a notebook (its paths under /kaggle/working) is what the notebook runs, as kernel.preset,
    while this machine keeps its own paths (the default preset's). kernel.preset given as well and naming
    another preset contradicts it: refused, since one of the two would be silently ignored."""
    chosen = load_config(preset, overrides)
    if chosen.paths.submissions != KAGGLE_WORKING:
        return chosen
    given = [o.partition("=")[2].strip().strip("\"'") for o in overrides
             if o.partition("=")[0].strip() == "kernel.preset"]
    if given and given[-1] != preset:
        raise UserError(f"--config {preset} is what the notebook runs, and kernel.preset={given[-1]} names "
                        f"another preset: give one of them (CONFIG={preset}, or CONFIG=default with "
                        f"kernel.preset={given[-1]})")
    return load_config("default", [*overrides, f"kernel.preset={preset}"])


def _own_run_per_model(preset: dict[str, Any], overrides: dict[str, Any], train: dict[str, Any]) -> None:
    """A preset's run name belongs to the model it trains: another model given on top of it, without a run
    name of its own, trains in a run named by its settings (`--config demo --set train.model=cut`:
    data/runs/cut-<hash>), so it never meets the preset's own run's checkpoints, nor another mode's."""
    model = overrides.get("model")
    if preset.get("run") and model and "run" not in overrides \
            and model != preset.get("model", TrainConfig.model):
        train["run"] = ""


def build_config(values: dict[str, dict[str, Any]], preset: str = "default") -> Config:
    """Turn nested dicts (as from TOML) into a validated Config."""
    sections: dict[str, type] = {f.name: f.default_factory for f in fields(Config)  # type: ignore[misc]
                                 if f.name not in ("preset", "families")}
    family_sections = {name: section.settings for name, section in model_sections().items()}
    sections.update(family_sections)
    kwargs: dict[str, Any] = {}
    for section, entries in renew_settings(values).items():
        if section not in sections:
            raise UserError(f"unknown settings section '{section}'; valid sections: {', '.join(sections)}")
        if not isinstance(entries, dict):
            raise UserError(f"'{section}' must be a table of settings, e.g. [{section}]")
        cls = sections[section]
        hints = typing.get_type_hints(cls)
        valid = [f.name for f in fields(cls)]
        converted = {}
        for key, value in entries.items():
            if key not in valid:
                raise UserError(f"unknown setting '{section}.{key}'; valid keys in [{section}]: "
                                f"{', '.join(valid)}")
            converted[key] = _coerce(f"{section}.{key}", value, hints[key])
        kwargs[section] = cls(**converted)
    chosen = {name: kwargs.pop(name) for name in family_sections if name in kwargs}
    return Config(**kwargs, families=family_sections_class()(**chosen), preset=preset)


def _split_override(item: str) -> tuple[str, str, str]:
    name, sep, raw = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise UserError(f"--set expects section.key=value (e.g. train.epochs=2), got '{item}'")
    return section, key, raw.strip()


def _parse_value(raw: str) -> Any:
    """TOML syntax when it parses (numbers, booleans, arrays, quoted strings), else the bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _coerce(key: str, value: Any, hint: Any) -> Any:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    origin = typing.get_origin(hint)
    if origin is tuple and typing.get_args(hint)[-1] is Ellipsis:  # a list of any length
        if not isinstance(value, (list, tuple)):
            raise UserError(f"setting {key} expects a list like ['a', 'b'], got {value!r}")
        return tuple(_coerce(key, v, typing.get_args(hint)[0]) for v in value)
    if origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, str):  # "0.7,1.0" as a shorthand for [0.7, 1.0]
            value = [_parse_value(part.strip()) for part in value.split(",")]
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise UserError(f"setting {key} expects {len(args)} values like [0.7, 1.0], got {value!r}")
        return tuple(_coerce(key, v, a) for v, a in zip(value, args, strict=False))
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if hint is bool and isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on",
                                                                     "off"):
        return value.lower() in ("true", "yes", "on")
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise UserError(f"setting {key} expects {names.get(hint, hint)}, got {value!r}")
    return value


def to_toml(cfg: Config) -> str:
    """The full, resolved settings as TOML (written into each run folder so a run can be reproduced)."""
    lines = [f"# preset: {cfg.preset}"]
    for name, section in cfg.sections().items():
        lines.append(f"\n[{name}]")
        for key, value in dataclasses.asdict(section).items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)
