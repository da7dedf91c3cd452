"""Where the download stage reads from (light: the up-to-date check imports it).

A folder source (`dir:PATH`, or the competition's input inside a Kaggle notebook) is read in place. An
archive source (`kaggle`) is fetched by a function registered under the source's name: the Kaggle API
(pipeline/kaggle/) registers its download when the `pipeline` package is imported, so that how the archive
arrives is not part of the download stage's code (its key): every image of it is checked anyway.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..config import Config
from ..engine.errors import UserError

ArchiveFetcher = Callable[[str, Path], Path]  # (competition, folder) -> the competition's zip, in that folder
_ARCHIVES: dict[str, ArchiveFetcher] = {}


def register_archive_source(name: str, fetch: ArchiveFetcher) -> None:
    """Make download.source=`name` fetch the competition's archive with `fetch`."""
    _ARCHIVES[name] = fetch


def archive_fetcher(name: str) -> ArchiveFetcher:
    if name not in _ARCHIVES:
        raise UserError(f"download.source={name}: no way to fetch it is registered here (import the "
                        "`pipeline` package, which registers the Kaggle API)")
    return _ARCHIVES[name]


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
