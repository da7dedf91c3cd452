"""A kernel's log as text. Kaggle keeps what a kernel printed as a JSON list of {stream_name, time, data}
entries (the file `kernels_output` saves as <slug>.log, and each entry of the live stream); a local run's
log is plain text. One reader for both, so that a failure's tail and a sweep's last line read the same."""
from __future__ import annotations

import json
from pathlib import Path


def read(path: Path) -> str:
    """What the kernel printed, as one text: Kaggle's entries joined, a plain-text log as it is. Raises
    OSError where the file cannot be read."""
    text = path.read_text(errors="replace")
    try:
        return "".join(str(entry.get("data") or "") for entry in json.loads(text))
    except (ValueError, TypeError, AttributeError):  # not Kaggle's JSON form
        return text


def lines(text: str) -> list[str]:
    """The lines as a terminal showed them: a progress bar redrawn with carriage returns keeps its last
    state."""
    return [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
