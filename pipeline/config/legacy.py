"""Everything that keeps older settings, run names, checkpoints and leaderboard files working, in one place.

The model is stylegan2-ada's legacy.py: every old format is read here and turned into today's, so the rest
of the code sees only today's names and layouts. What it covers:

- kernel.set given as one `;`-separated string: read as today's list;
- settings keys that were renamed or moved (`kernel.enable_gpu`; the family keys that sat in the flat
  [train] section before each family had its own section: `train.ngf` is `cyclegan.ngf`): read under their
  new name, with a one-line notice each;
- run names: the folder a run trains into is named by a hash of its settings, so settings added later
  (`train.ema`, `train.epoch_over`, `train.init`) are hashed only when set, and the two families that were
  once one flat section (cyclegan, dcgan) hash their sections under their old flat names, as that section
  hashed;
- checkpoints written before the families had sections: one flat "train" dict, which is split here into
  today's [train] and family sections (those written before the plan lack "plan": the loop then plans anew);
- leaderboard.csv rows of a file written before a column existed: the cell is empty.
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable
from typing import Any

# (section, key) -> (new section, new key, how an old value reads as the new one)
Renames = dict[tuple[str, str], tuple[str, str, Callable[[Any], Any]]]

# The family keys that sat in [train] before the families had sections: family -> {new key: old train key}.
FLAT_TRAIN_KEYS: dict[str, dict[str, str]] = {
    "cyclegan": {k: k for k in ("generator", "ngf", "n_blocks", "ndf", "d_layers", "lambda_cycle",
                                "lambda_identity", "pool_size")},
    "dcgan": {"z_dim": "z_dim", "width": "dcgan_width", "loss": "loss", "label_smoothing": "label_smoothing",
              "spectral_norm": "spectral_norm", "d_dropout": "d_dropout", "instance_noise": "instance_noise",
              "gp_weight": "gp_weight", "n_critic": "n_critic"},
}

RENAMED: Renames = {
    ("kernel", "enable_gpu"): ("kernel", "accelerator", lambda on: "t4x2" if on else "none"),
    **{("train", old): (family, new, lambda value: value)
       for family, keys in FLAT_TRAIN_KEYS.items() for new, old in keys.items()},
}

# [train] settings added after runs were named: hashed into a run's name only when not at this value.
ADDED_TRAIN_KEYS: dict[str, Any] = {"epoch_over": "paintings", "ema": 0.0, "init": ""}


def renew_settings(values: dict[str, Any]) -> dict[str, Any]:
    """`values` (sections of settings, as from TOML) with every old key under its new name, saying so once per
    key on stderr; where both are given the new key wins."""
    values = {section: dict(entries) if isinstance(entries, dict) else entries
              for section, entries in values.items()}
    for (section, key), (new_section, new_key, convert) in RENAMED.items():
        entries = values.get(section)
        if not isinstance(entries, dict) or key not in entries:
            continue
        old = entries.pop(key)
        target = values.setdefault(new_section, {})
        if new_key in target:
            note = f"{new_section}.{new_key} is also set and wins"
        else:
            target[new_key] = convert(old)
            note = f"read as {new_section}.{new_key}={target[new_key]!r}"
        print(f"settings: {section}.{key} is deprecated: use {new_section}.{new_key} ({note})",
              file=sys.stderr)
    kernel = values.get("kernel")
    if isinstance(kernel, dict) and isinstance(kernel.get("set"), str):
        kernel["set"] = split_items(kernel["set"])
    return values


def split_items(text: str) -> list[str]:
    """kernel.set as it was once given, one string of `;`-separated items: today's list (a notice where there
    were several, since `;` cannot be told from a `;` inside a value)."""
    items = [item.strip() for item in text.split(";") if item.strip()]
    if len(items) > 1:
        print('settings: kernel.set as one ";"-separated string is deprecated: give a list, e.g. '
              "kernel.set=['train.epochs=2', 'train.lr=1e-4']", file=sys.stderr)
    return items


def run_name_values(model: str, train: dict[str, Any], sections: dict[str, Any]) -> dict[str, Any]:
    """What a run's name hashes, from its [train] values (those that name runs) and every family's section:
    [train] without the keys added later at their old value, then the family's section, or for a family of
    the old flat section every such family's keys under their old names."""
    hashed = {k: v for k, v in train.items() if not (k in ADDED_TRAIN_KEYS and v == ADDED_TRAIN_KEYS[k])}
    if model in FLAT_TRAIN_KEYS:
        for family, keys in FLAT_TRAIN_KEYS.items():
            hashed.update({old: getattr(sections[family], new) for new, old in keys.items()})
    else:
        hashed[model] = dataclasses.asdict(sections[model])
    return hashed


def upgrade_checkpoint(payload: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's contents in today's layout: "train" (the [train] section), "family" (the family's)."""
    if "family" in payload:
        return payload
    flat = payload["train"]
    keys = FLAT_TRAIN_KEYS.get(flat.get("model", ""), {})
    return {**payload, "family": {new: flat[old] for new, old in keys.items() if old in flat}}


def upgrade_row(row: dict[str, str], columns: Iterable[str]) -> dict[str, str]:
    """A leaderboard.csv row with every column of today's file (empty where an older file had none)."""
    return {c: row.get(c) or "" for c in columns}
