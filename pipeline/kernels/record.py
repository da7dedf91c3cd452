"""Every kernel this machine pushed, one record each, in one file: submissions/kaggle/kernels.json.

A Kaggle run takes hours and the command that pushed it can be stopped at any moment (Ctrl-C, a closed laptop,
kill -9), so what was pushed is written down before the push is sent and again once Kaggle has answered: the
next `submit`, `train-kaggle` or `sweep` follows that version instead of pushing (and paying for) another run.
Records are named by what they are for (`submit/<slug>`, `train/<slug>/<session>`, `sweep/<sweep>/<variant>`)
and carry the digest of the settings that built the kernel, so a record of other settings is never followed.
Several commands may run at once (a sweep beside a submit): each change is a locked read-modify-write.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..engine import atomic
from ..kaggle.status import KernelStatus


@dataclass(frozen=True)
class PushedKernel:
    """One push of a kernel and where its run stands."""

    ref: str  # owner/slug
    version: int  # 0 while the push is under way
    url: str
    status: KernelStatus
    pushed_at: str  # ISO time, UTC
    key: str = ""  # digest of the settings that built it
    before: int = 0  # the kernel's latest version before this push: how a push that landed unrecorded shows
    quota_left_h: float | None = None  # GPU hours left before the push, where Kaggle said

    @property
    def label(self) -> str:
        """'owner/slug vN': how messages and the leaderboard name the version."""
        return f"{self.ref} v{self.version}"

    def now(self, status: KernelStatus) -> PushedKernel:
        return dataclasses.replace(self, status=status)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": self.status.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PushedKernel:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**{**values, "status": KernelStatus(values["status"])})


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PushStore:
    """The records of submissions/kaggle/kernels.json by name."""

    def __init__(self, submissions_dir: Path) -> None:
        self.path = Path(submissions_dir) / "kaggle" / "kernels.json"

    def get(self, name: str) -> PushedKernel | None:
        return self._read().get(name)

    def all(self) -> dict[str, PushedKernel]:
        return self._read()

    def put(self, name: str, record: PushedKernel) -> PushedKernel:
        with self._locked():
            records = self._read()
            records[name] = record
            atomic.write_json(self.path, {k: v.to_json() for k, v in sorted(records.items())})
        return record

    def drop(self, names: list[str]) -> None:
        """Forget these records (--force: the next push is a new run, whatever ran before)."""
        with self._locked():
            records = self._read()
            for name in names:
                records.pop(name, None)
            atomic.write_json(self.path, {k: v.to_json() for k, v in sorted(records.items())})

    def _read(self) -> dict[str, PushedKernel]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        records = {}
        for name, value in data.items():
            try:
                records[name] = PushedKernel.from_json(value)
            except (KeyError, TypeError, ValueError):
                continue  # a record this version cannot read is as good as none: the kernel is pushed anew
        return records

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(".kernels.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
