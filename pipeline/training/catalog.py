"""`python -m pipeline families [--settings NAME]`: the registered model families, and one family's
settings."""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from ..engine.errors import UserError
from .family import families, get_family


def command(cfg: Any, args: argparse.Namespace) -> int:
    if args.settings:
        if args.settings not in families():
            raise UserError(f"unknown model family '{args.settings}'; registered families: "
                            f"{', '.join(families())}")
        print("\n".join(settings_lines(args.settings)))
        return 0
    found = families()
    width = max(len(n) for n in found)
    for name, family in found.items():
        print(f"{name:<{width}}  {family.maps_from} -> {family.maps_to}  {family.description}")
    return 0


def settings_lines(name: str) -> list[str]:
    """`[name]`, then one line per setting: `key = default  # meaning` (TOML, ready to paste; a setting
    whose default is decided by another one is written commented out, `# key =`)."""
    family = get_family(name)
    entries = [(f"{f.name} = {_toml(f.default)}" if f.default is not None else f"# {f.name} =",
                f.metadata.get("help", "")) for f in dataclasses.fields(family.settings)]
    width = max(len(e) for e, _ in entries)
    head = [f"# {name}: {family.maps_from} -> {family.maps_to}. {family.description}",
            f"# Set with --set {name}.KEY=VALUE or a [{name}] table in a preset.", f"[{name}]"]
    return head + [f"{e:<{width}}  # {h}" if h else e for e, h in entries]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else repr(value)
