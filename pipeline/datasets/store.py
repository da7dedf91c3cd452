"""What this machine put on Kaggle as datasets (`python -m pipeline upload`), one record each, in one file:
submissions/kaggle/uploads.json.

A record says which dataset holds an uploaded run (`run/<name>`) or the FID weights (`weights`), its version
and what went into it, so that `make submit RUN=<name>` attaches the run's dataset, a kernel whose
kernel.weights_dataset is empty attaches the weights, and the same files are not sent twice. Kept apart from
the upload command so that building a kernel reads it without importing the client or torch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..engine import store

WEIGHTS = "weights"  # the record of the FID weights' dataset


def run_record(run: str) -> str:
    """The record of run `run`'s dataset."""
    return f"run/{run}"


@dataclass(frozen=True)
class Upload:
    """One dataset this machine uploaded, as of its latest version."""

    ref: str  # owner/slug
    version: int
    file: str  # the checkpoint (last.pt, best.pt) or the weights file it holds
    step: int  # training steps behind the checkpoint (0 for the weights)
    digest: str  # of the files sent: the same files again are not uploaded
    uploaded_at: str  # ISO time, UTC

    @property
    def source(self) -> str:
        """How kernel.checkpoint_from names this dataset."""
        return f"dataset:{self.ref}"


class Uploads:
    """The records of submissions/kaggle/uploads.json by name."""

    def __init__(self, submissions_dir: Path) -> None:
        self.path = Path(submissions_dir) / "kaggle" / "uploads.json"

    def get(self, name: str) -> Upload | None:
        return self._read().get(name)

    def put(self, name: str, record: Upload) -> Upload:
        """Record `record` as `name`, under the file's lock (an upload finishing at the same time keeps its
        record); every other record stays as it was, one this version cannot read included."""
        store.update_json(self.path, lambda data: {**_records(data), name: dataclasses.asdict(record)}, {})
        return record

    def _read(self) -> dict[str, Upload]:
        records = {}
        for name, value in _records(store.read_json(self.path, {})).items():
            try:
                records[name] = Upload(**value)
            except TypeError:  # a record this version cannot read is as good as none: upload again
                continue
        return records


def _records(data: Any) -> dict[str, Any]:
    """What uploads.json holds by name ({} where it is not an object: a file from no version of this)."""
    return data if isinstance(data, dict) else {}


def weights_dataset(cfg: Config) -> str:
    """The dataset a kernel attaches for the FID weights: kernel.weights_dataset, else the one `make
    upload-weights` recorded ("" for none)."""
    recorded = Uploads(cfg.submissions_dir).get(WEIGHTS)
    return cfg.kernel.weights_dataset or (recorded.ref if recorded else "")
