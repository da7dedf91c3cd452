"""Which run made a set of generated images: a small record that travels with the images.

`score` files its leaderboard row under the run the record names, never under whatever run the current
settings name (a DCGAN folder scored with the default settings is not a CycleGAN row); a set without a
record is filed as `unknown`. The record says the run (the folder its checkpoint came from), the family, the
config hash, the checkpoint and its step, raw or EMA weights, whether it was made in a Kaggle notebook,
and for a Kaggle run the kernel version (so every version gets its own row). It lives:

- in a folder of images as the hidden file `.provenance.json`: hidden files are neither fingerprinted nor
  zipped (like the preview grid), so the images' cache keys and the zip's rules are untouched, and the
  record moves with the folder;
- in an images.zip as the archive's comment: the zip stays a flat set of JPEGs as Kaggle's rules ask, and
  the record goes wherever the zip goes, a Kaggle kernel's output included;
- beside a zip as `<zip>.provenance.json`, written by `submit`, which knows what the zip cannot: the kernel
  version that made it (a notebook does not know its own version number). It wins over the comment.
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import atomic

RECORD = ".provenance.json"  # inside a folder of images
UNKNOWN_RUN = "unknown"


@dataclass(frozen=True)
class Provenance:
    run: str = UNKNOWN_RUN  # the run folder the checkpoint came from (data/runs/<run>)
    family: str = ""  # train.model of the checkpoint
    config_hash: str = ""  # first 8 hex digits of the checkpoint's train settings hash
    checkpoint: str = ""  # last.pt, best.pt, ckpt_<step>.pt
    step: int = 0  # training steps behind the weights
    weights: str = "raw"  # raw | ema (the averaged generator)
    kaggle: bool = False  # made inside a Kaggle notebook
    kernel: str = ""  # "owner/slug vN" for a Kaggle kernel's output (added by submit)
    # the train kernel whose run made the checkpoint ("owner/slug-train-3"; submit adds " vN" if it knows)
    trained_by: str = ""
    # No time of making: the record, like the images, is a pure function of what made them (a re-run
    # writes the same bytes, and the zip that carries it stays deterministic).

    @property
    def label(self) -> str:
        """The leaderboard's name for these images: the run, and the kernel version for a Kaggle run."""
        return f"{self.run} ({self.kernel})" if self.kernel else self.run

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


UNKNOWN = Provenance()


def for_generator(cfg: Any, loaded: Any, checkpoint: Path) -> Provenance:
    """The record of images made by `loaded` (a LoadedGenerator) read from `checkpoint`.

    The config hash is the checkpoint's own settings' (generate.checkpoint may name another run's file), and
    so is the run's name where its settings give one: the folder holding the file may be a Kaggle dataset's.
    """
    made_with = dataclasses.replace(cfg, train=loaded.train, families=dataclasses.replace(
        cfg.families, **{loaded.kind: loaded.settings}))
    return Provenance(run=loaded.train.run or Path(checkpoint).resolve().parent.name, family=loaded.kind,
                      config_hash=made_with.train_hash()[:8], checkpoint=Path(checkpoint).name,
                      step=int(loaded.step), weights="ema" if loaded.ema else "raw",
                      kaggle=bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE")))


def write(folder: Path, record: Provenance) -> None:
    """Leave the record in a folder of images."""
    atomic.write_json(Path(folder) / RECORD, record.as_dict())


def write_beside(archive: Path, record: Provenance) -> None:
    """Leave the record beside a zip (it then wins over the zip's comment)."""
    atomic.write_json(_beside(archive), record.as_dict())


def as_comment(record: Provenance) -> bytes:
    """The record as a zip archive comment (compact JSON, far below the format's 64 KiB)."""
    return json.dumps(record.as_dict(), sort_keys=True, separators=(",", ":")).encode()


def read(images: Path) -> Provenance | None:
    """The record of a folder or zip of images, or None when it has none (or one that is not ours)."""
    images = Path(images)
    if images.is_dir():
        return _parse(_text(images / RECORD))
    beside = _parse(_text(_beside(images)))
    if beside is not None:
        return beside
    try:
        with zipfile.ZipFile(images) as zf:
            return _parse(zf.comment.decode("utf-8", errors="replace"))
    except (OSError, zipfile.BadZipFile):
        return None


def read_text(folder: Path) -> str:
    """The raw record of a folder ("" without one): what the zip stage's cache key covers."""
    return _text(Path(folder) / RECORD)


def _beside(archive: Path) -> Path:
    archive = Path(archive)
    return archive.with_name(archive.name + ".provenance.json")


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _parse(text: str) -> Provenance | None:
    """A record from its JSON; unknown keys are ignored (a newer pipeline's), anything else is None."""
    try:
        values = json.loads(text)
    except ValueError:
        return None
    if not isinstance(values, dict) or not isinstance(values.get("run"), str) or not values["run"]:
        return None
    known = {f.name for f in dataclasses.fields(Provenance)}
    return Provenance(**{k: v for k, v in values.items() if k in known})
