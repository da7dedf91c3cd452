"""Where things stand on Kaggle, one enum each, valued by Kaggle's own names in lower case (as kagglesdk's
enums name them, and as the kaggle client prints them): a pushed kernel version (KernelWorkerStatus, and the
two statuses only this side knows: a push sent whose version is not known yet; a version pushed and not
asked about yet), a submission (SubmissionStatus) and a dataset's latest version (DatabundleVersionStatus).

Kept as enums rather than strings so that a misspelt status is an AttributeError, not a kernel followed
forever or a submission waited on for nothing, and so that "has it ended?" is answered in one place.
"""
from __future__ import annotations

import enum
from typing import Self


class _FromKaggle(enum.Enum):
    @classmethod
    def from_kaggle(cls, status: object) -> Self:
        """The client's enum member (or its name, or the client's lower-case text of it) as ours."""
        return cls(getattr(status, "name", str(status)).lower())


class KernelStatus(_FromKaggle):
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


class SubmissionStatus(_FromKaggle):
    PENDING = "pending"  # not scored yet
    COMPLETE = "complete"  # scored: the public score is there
    ERROR = "error"  # Kaggle could not score it (the submission's error says why)


class DatasetStatus(_FromKaggle):
    """Where Kaggle is with the files of a dataset's latest version: READY once a notebook attaching it gets
    them, FAILED where it never will; the others are steps of processing an upload."""

    NOT_YET_PERSISTED = "not_yet_persisted"
    BLOBS_RECEIVED = "blobs_received"
    BLOBS_DECOMPRESSED = "blobs_decompressed"
    BLOBS_COPIED_TO_SDS = "blobs_copied_to_sds"
    INDIVIDUAL_BLOBS_COMPRESSED = "individual_blobs_compressed"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"
    REPROCESSING = "reprocessing"
