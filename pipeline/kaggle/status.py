"""Where a pushed kernel version stands, as one enum: Kaggle's own statuses (kagglesdk's KernelWorkerStatus)
and the two that only this side knows (a push sent whose version is not known yet; a version pushed and not
asked about yet).

Kept as an enum rather than strings so that a misspelt status is an AttributeError, not a kernel followed
forever, and so that "has it ended?" is answered in one place.
"""
from __future__ import annotations

import enum


class KernelStatus(enum.Enum):
    PUSHING = "pushing"  # the push was sent; the version it made is not recorded yet
    PUSHED = "pushed"  # the version is known; Kaggle not asked since
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    ERROR = "error"
    CANCEL_REQUESTED = "cancel_requested"
    CANCEL_ACKNOWLEDGED = "cancel_acknowledged"
    NEW_SCRIPT = "new_script"  # Kaggle's name for a version saved without a run

    @property
    def ended(self) -> bool:
        """The run is over: nothing more will change on Kaggle."""
        return self in (KernelStatus.COMPLETE, KernelStatus.ERROR, KernelStatus.CANCEL_ACKNOWLEDGED)

    @classmethod
    def from_kaggle(cls, status: object) -> KernelStatus:
        """The client's KernelWorkerStatus (or its name) as ours."""
        return cls(getattr(status, "name", str(status)).lower())
