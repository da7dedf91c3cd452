"""Files that two commands may change at once (the leaderboard, uploads, job records): one locked, atomic
read-modify-write, so that no write is lost and no reader sees half a file.

The lock is an flock on a hidden file beside the data (`.<name>.lock`), held across the read, the change and
the atomic rename; readers need no lock, since the rename makes every read see one whole version. A killed
writer releases its lock with its process, and leaves the old file whole.
"""
from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from . import atomic

T = TypeVar("T")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the writers' lock of `path` (blocking until every other writer has let it go)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update(path: Path, read: Callable[[Path], T], write: Callable[[Path, T], None],
           change: Callable[[T], T]) -> T:
    """Under the lock: `read` the file, `change` what it holds, `write` the result atomically; returns it.
    `read` must answer for a missing file (an empty value) and `write` must be atomic (engine.atomic)."""
    with locked(path):
        new = change(read(path))
        write(path, new)
        return new


def read_json(path: Path, default: Any) -> Any:
    """The JSON in `path`; `default` where there is none or it cannot be read (a file no writer finished)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def update_json(path: Path, change: Callable[[Any], Any], default: Any) -> Any:
    """update() for a JSON file: `change` gets what the file holds (`default` where it holds nothing)."""
    return update(path, lambda p: read_json(p, default), atomic.write_json, change)
