"""Where the download stage reads from (light: the up-to-date check imports it).

A folder source is read in place: `dir:PATH`, or `kaggle-input`, the competition's data mounted in a Kaggle
notebook. Kaggle has moved that mount (competitions/<slug>/ today, the flat <slug>/ in older notebooks), so
it is found by what it holds, the folders monet_jpg/ and photo_jpg/, not by a path. An archive source
(`kaggle`) is fetched by a function registered under the source's name: the Kaggle API's download, registered
by `pipeline.plugins.load()` (every entry point calls it), so that how the archive arrives is not part of the
download stage's code (its key): every image of it is checked anyway.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..config import Config
from ..engine.errors import UserError

ArchiveFetcher = Callable[[str, Path], Path]  # (competition, folder) -> the competition's zip, in that folder
_ARCHIVES: dict[str, ArchiveFetcher] = {}

KAGGLE_INPUT = "kaggle-input"  # download.source: the competition's data as a Kaggle notebook sees it
COMPETITION_FOLDERS = ("monet_jpg", "photo_jpg")  # what marks the competition's data, wherever it is mounted
# competitions/<slug> is 2 levels below input/, datasets/<owner>/<slug>/<folder> 4: deep enough for every
# layout Kaggle has used, and a bound on the walk (an attached dataset may hold a huge tree).
SEARCH_DEPTH = 4
MOUNT_DEPTH = {"competitions": 2, "datasets": 3, "notebooks": 3, "models": 3}  # <kind>/[<owner>/]<slug>
LISTED_MOUNTS = 8  # in the one-line error


def register_archive_source(name: str, fetch: ArchiveFetcher) -> None:
    """Make download.source=`name` fetch the competition's archive with `fetch`."""
    _ARCHIVES[name] = fetch


def archive_fetcher(name: str) -> ArchiveFetcher:
    if name not in _ARCHIVES:
        raise UserError(f"download.source={name}: no way to fetch it is registered here (the plugins' load() "
                        "registers the Kaggle API: call it first)")
    return _ARCHIVES[name]


def kaggle_inputs() -> Path:
    """Where a Kaggle notebook's inputs are mounted: $KAGGLE_ROOT/input (KAGGLE_ROOT defaults to /kaggle)."""
    return Path(os.environ.get("KAGGLE_ROOT") or "/kaggle") / "input"


def dir_source(cfg: Config) -> Path | None:
    """The folder the download stage copies from, if the source is a folder: download.source=dir:PATH, or
    kaggle-input (and auto inside a Kaggle notebook, $KAGGLE_KERNEL_RUN_TYPE set): the competition's data
    among the notebook's inputs. kaggle-input with nothing that fits is a UserError listing what is there;
    auto then falls back to the kaggle archive."""
    src, competition = cfg.download.source, cfg.download.competition
    if src.startswith("dir:"):
        return Path(src[4:]).expanduser()
    if src == KAGGLE_INPUT or src == "auto" and os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
        found = find_competition(kaggle_inputs(), competition)
        if found is None and src == KAGGLE_INPUT:
            raise UserError(not_attached(kaggle_inputs(), competition))
        return found
    return None


def find_competition(inputs: Path, competition: str) -> Path | None:
    """The folder under `inputs` holding monet_jpg/ and photo_jpg/: competitions/<competition>/ (today's
    mount), else the flat <competition>/ (older notebooks), else the shallowest other (first by name), at most
    SEARCH_DEPTH levels down; None when none does."""
    for preferred in (inputs / "competitions" / competition, inputs / competition):
        if _holds_competition(preferred):
            return preferred
    level = [inputs]
    for _ in range(SEARCH_DEPTH):
        level = [sub for folder in level for sub in _subfolders(folder)
                 if sub.name not in COMPETITION_FOLDERS]  # 7,038 photos: no folder worth listing
        found = next((folder for folder in level if _holds_competition(folder)), None)
        if found is not None:
            return found
    return None


def mounted(inputs: Path) -> list[str]:
    """What is mounted under `inputs`, relative to it: competitions/<slug>, datasets/<owner>/<slug>,
    notebooks/<owner>/<slug>, and the old flat <slug>."""
    found = []
    for top in _subfolders(inputs):
        level = [top]
        for _ in range(MOUNT_DEPTH.get(top.name, 1) - 1):
            level = [sub for folder in level for sub in _subfolders(folder)]
        found += [folder.relative_to(inputs).as_posix() for folder in level]
    return found


def not_attached(inputs: Path, competition: str) -> str:
    """One line: the competition's data is not among the inputs; what is, and how to attach it."""
    there = mounted(inputs)
    listed = ", ".join(there[:LISTED_MOUNTS]) + (f" and {len(there) - LISTED_MOUNTS} more"
                                                  if len(there) > LISTED_MOUNTS else "")
    return (f"the competition data is not attached: no folder holding {'/ and '.join(COMPETITION_FOLDERS)}/ "
            f"under {inputs} (found: {listed or 'nothing'}); add it with Add Input → Competitions → "
            f"{competition}")


def _holds_competition(folder: Path) -> bool:
    return all((folder / name).is_dir() for name in COMPETITION_FOLDERS)


def _subfolders(folder: Path) -> list[Path]:
    """The folders in `folder`, by name (its directory entries' types: no stat of every file)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(entry.path) for entry in entries if entry.is_dir())
    except OSError:  # not there, or not readable: nothing mounted in it
        return []
