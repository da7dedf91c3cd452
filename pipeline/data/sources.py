"""Where the download stage reads from when the source is a folder (light: the up-to-date check imports
it)."""
from __future__ import annotations

import os
from pathlib import Path

from ..config import Config


def dir_source(cfg: Config) -> Path | None:
    """The folder the download stage copies from, if the source is a folder: download.source=dir:PATH,
    or source=auto inside a Kaggle notebook ($KAGGLE_KERNEL_RUN_TYPE set), where the competition's
    data is mounted at $KAGGLE_ROOT/input/<competition> (KAGGLE_ROOT defaults to /kaggle)."""
    src = cfg.download.source
    if src.startswith("dir:"):
        return Path(src[4:]).expanduser()
    if src == "auto" and os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
        mounted = Path(os.environ.get("KAGGLE_ROOT", "/kaggle")) / "input" / cfg.download.competition
        if mounted.is_dir():
            return mounted
    return None
