"""One Kaggle job, as a typed record: what it is for (its name), the digest of the settings that built it, the
kernel version it runs as, where that run stands, the GPU time it may take, and where its output was fetched.

A job is one notebook version doing one thing: a submission run, session k of a run trained over several
kernels, a sweep variant, a search trial's session k. Its name says which, built and parsed by one type
(`JobName`), so no caller assembles or splits name strings. The record is written before the push is sent
and again each time Kaggle answers (store.py), so a command stopped at any moment follows its own version
when run again instead of paying for another.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from ..kaggle.status import KernelStatus


class JobKind(enum.Enum):
    """What a job is for."""

    SUBMIT = "submit"  # the submission notebook (training its run, or generating from another's)
    TRAIN = "train"  # session k of a run trained over several kernels (train-kaggle)
    SWEEP = "sweep"  # a sweep's given trial (one session)
    SEARCH = "search"  # session k of a search trial


@dataclass(frozen=True)
class JobName:
    """The name a job is recorded under: `submit/<slug>`, `train/<slug>/<session>`, `sweep/<sweep>/<variant>`,
    `search/<search>/<trial>/<session>`."""

    kind: JobKind
    group: str  # the kernel's base slug (submit, train) or the sweep's / search's name
    member: str = ""  # the sweep's variant, the search's trial number
    session: int = 0  # train and search: which session of the run

    def __str__(self) -> str:
        parts = [self.kind.value, self.group]
        if self.member:
            parts.append(self.member)
        if self.kind in (JobKind.TRAIN, JobKind.SEARCH):
            parts.append(str(self.session))
        return "/".join(parts)

    @classmethod
    def parse(cls, text: str) -> JobName:
        """The name `str()` made; ValueError for anything else."""
        kind, *rest = text.split("/")
        job = JobKind(kind)
        shapes = {JobKind.SUBMIT: 1, JobKind.TRAIN: 2, JobKind.SWEEP: 2, JobKind.SEARCH: 3}
        if len(rest) != shapes[job] or not all(rest):
            raise ValueError(f"not a job name: {text!r}")
        if job is JobKind.SUBMIT:
            return cls(job, rest[0])
        if job is JobKind.TRAIN:
            return cls(job, rest[0], session=int(rest[1]))
        if job is JobKind.SWEEP:
            return cls(job, rest[0], rest[1])
        return cls(job, rest[0], rest[1], int(rest[2]))


@dataclass(frozen=True)
class Job:
    """One push of a kernel and where its run stands."""

    name: JobName
    ref: str  # owner/slug
    version: int  # 0 while the push is under way
    url: str
    status: KernelStatus
    pushed_at: str  # ISO time, UTC
    key: str = ""  # digest of the settings that built it: a record of other settings is never followed
    limit_min: float = 0.0  # the session timeout it was pushed with: the most GPU time it can take
    before: int = 0  # the kernel's latest version before this push: how a push that landed unrecorded shows
    quota_left_h: float | None = None  # GPU hours left before the push, where Kaggle said
    output: str = ""  # the folder its finished version's output was fetched into

    @property
    def label(self) -> str:
        """'owner/slug vN': how messages and the leaderboard name the version."""
        return f"{self.ref} v{self.version}"

    @property
    def versioned_ref(self) -> str:
        """'owner/slug/N': how Kaggle's own CLI asks about this version (not the latest: may be stale)."""
        return f"{self.ref}/{self.version}"

    def now(self, status: KernelStatus, **changes: Any) -> Job:
        return dataclasses.replace(self, status=status, **changes)

    def follows(self, key: str) -> bool:
        """A push of these settings whose run has not ended: the command follows it instead of pushing."""
        return self.key == key and not self.status.ended

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {**data, "name": str(self.name), "status": self.status.value}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Job:
        """The record stored under `name` (also one written before jobs had a name, limit or output)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"name", "status"}
        values = {k: v for k, v in data.items() if k in known}
        return cls(name=JobName.parse(name), status=KernelStatus(data["status"]), **values)
