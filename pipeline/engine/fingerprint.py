"""Content fingerprints of folders, computed once and kept in a cache keyed by the folder's path.

A fingerprint is a hash of (relative path, size, sha256) of every file that is not hidden. Hashing
7,000 JPEGs takes seconds, so per-file hashes are remembered together with (size, mtime): a re-run
only stats the files and hashes what changed. The cache lives under data/.cache, not in the folder,
because inputs may be read-only (a Kaggle notebook's /kaggle/input, a shared data set).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import atomic


def iter_files(folder: Path) -> list[Path]:
    """Every non-hidden regular file below `folder`, sorted, never following symlinked folders."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        found.extend(Path(root, f) for f in files if not f.startswith("."))
    return sorted(found)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_table(folder: Path, cache_dir: Path | None) -> dict[str, tuple[int, str]]:
    """{relative path: (size, sha256)} for `folder`, re-hashing only files whose size or mtime changed."""
    folder = Path(folder).resolve()
    memo_path = None
    memo: dict[str, list] = {}
    if cache_dir is not None:
        memo_path = (Path(cache_dir) / "fingerprints"
                     / (hashlib.sha1(str(folder).encode()).hexdigest() + ".json"))
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
    table: dict[str, tuple[int, str]] = {}
    fresh: dict[str, list] = {}
    for path in iter_files(folder):
        rel = path.relative_to(folder).as_posix()
        try:
            st = path.stat()
            seen = memo.get(rel)
            if seen and seen[0] == st.st_size and seen[1] == st.st_mtime_ns:
                digest = seen[2]
            else:
                digest = sha256_file(path)
        except OSError as exc:
            # A symlink loop, a dangling link, a file without read permission: it still counts (the stage
            # that reads it names it with the reason), and is hashed again once it becomes readable.
            table[rel] = (-1, f"unreadable: {exc.strerror or exc}")
            continue
        fresh[rel] = [st.st_size, st.st_mtime_ns, digest]
        table[rel] = (st.st_size, digest)
    if memo_path is not None and fresh != memo:
        atomic.write_text(memo_path, json.dumps(fresh))
    return table


def fingerprint(path: Path, cache_dir: Path | None = None) -> str:
    """Fingerprint of a file or folder; a missing path has the fingerprint 'missing'."""
    path = Path(path)
    if path.is_file():
        return hashlib.sha256(f"{path.stat().st_size}:{sha256_file(path)}".encode()).hexdigest()
    if not path.is_dir():
        return "missing"
    rows = file_table(path, cache_dir)
    return hashlib.sha256(json.dumps(sorted(rows.items())).encode()).hexdigest()
