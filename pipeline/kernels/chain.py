"""What `kaggle-train` remembers of a run trained over several Kaggle sessions, so that it never pushes a
session twice: submissions/kaggle/train/<slug>.json.

The file holds the chain's key (the kernels' settings, the session number aside) and per session its
kernel (owner/slug), version, URL, status (pushed, complete, failed) and the line that says where the run
stands. A chain whose settings changed starts anew; the fetched summaries of each session (its output
without the checkpoints) lie beside the file, in one folder per session's kernel.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import Config
from ..engine import atomic
from ..engine.keys import digest


def session_settings(cfg: Config, session: int) -> Config:
    """The settings that build session `session`'s train kernel."""
    return replace(cfg, kernel=replace(cfg.kernel, role="train", session=session, checkpoint_from=""))


def folder(cfg: Config) -> Path:
    return cfg.submissions_dir / "kaggle" / "train"


@dataclass
class Chain:
    path: Path
    key: str
    sessions: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, cfg: Config, fresh: bool = False) -> Chain:
        """The chain of cfg's run as recorded, or a new one (`fresh`, or the settings changed: said in a
        line)."""
        path = folder(cfg) / f"{cfg.kernel.slug}.json"
        key = digest({"kernel": session_settings(cfg, 1).kernel, "sessions": cfg.train.sessions})
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved and saved.get("key") != key and not fresh:
            print(f"kaggle-train: the settings differ from the chain recorded in {path}: a new chain starts "
                  "at session 1")
        if fresh or saved.get("key") != key:
            return cls(path, key)
        return cls(path, key, {int(k): v for k, v in saved.get("sessions", {}).items()})

    def record(self, session: int, **values: Any) -> None:
        self.sessions[session] = {**self.sessions.get(session, {}), **values,
                                  "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        sessions = {str(k): v for k, v in self.sessions.items()}
        atomic.write_json(self.path, {"key": self.key, "sessions": sessions})


def trained_version(cfg: Config, ref: str) -> str:
    """'owner/slug v3': the train kernel `ref` with the version of its run's last session, where a chain on
    this machine recorded it complete; else `ref` as it is."""
    for path in sorted(folder(cfg).glob("*.json")):
        try:
            sessions = json.loads(path.read_text()).get("sessions", {}).values()
        except (OSError, ValueError, AttributeError):
            continue
        versions = [s["version"] for s in sessions if s.get("ref") == ref and s.get("status") == "complete"]
        if versions:
            return f"{ref} v{max(versions)}"
    return ref
