"""Every job this machine pushed, one record each, in one file: submissions/kaggle/kernels.json.

Several commands may run at once (a sweep beside a submit, two searches): each change is a locked
read-modify-write of the whole file (engine/store.py), so no record is lost; a reader needs no lock.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..engine import store
from .record import Job, JobKind, JobName


class JobStore:
    """The records of submissions/kaggle/kernels.json by name."""

    def __init__(self, submissions_dir: Path) -> None:
        self.path = Path(submissions_dir) / "kaggle" / "kernels.json"

    def get(self, name: JobName) -> Job | None:
        return self.all().get(name)

    def all(self, kind: JobKind | None = None, group: str = "") -> dict[JobName, Job]:
        """Every record (of that kind, of that group), by name."""
        jobs = _parse(store.read_json(self.path, {}))
        return {n: j for n, j in jobs.items() if (kind is None or n.kind is kind) and (not group or
                                                                                       n.group == group)}

    def unfinished(self, name: JobName, key: str) -> Job | None:
        """The record `name` where it is a push of these settings whose run has not ended."""
        job = self.get(name)
        return job if job is not None and job.follows(key) else None

    def put(self, job: Job) -> Job:
        store.update_json(self.path, lambda data: {**data, str(job.name): job.to_json()}, {})
        return job

    def drop(self, names: Iterable[JobName]) -> None:
        """Forget these records (--force: the next push is a new run, whatever ran before)."""
        gone = {str(n) for n in names}
        store.update_json(self.path, lambda data: {k: v for k, v in data.items() if k not in gone}, {})


def _parse(data: Any) -> dict[JobName, Job]:
    jobs = {}
    for name, value in (data.items() if isinstance(data, dict) else ()):
        try:
            job = Job.from_json(name, value)
        except (KeyError, TypeError, ValueError):
            continue  # a record this version cannot read is as good as none: the kernel is pushed anew
        jobs[job.name] = job
    return jobs
