"""`python -m pipeline.search.session SETTINGS.toml`: one session of a local search's trial (or a sweep's
variant), in a process of its own.

It runs the stages any run does (download, augment, train, then generate and score a subset of
sweep.score_images images: generate.subset), each cached as usual, so a session interrupted and started again
goes on where it stopped. The last line it prints says why when it fails; at the end it leaves done.json
beside its settings, which tells the search it finished.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import plugins
from ..config import load_config
from ..engine import atomic
from ..engine.errors import StageSkipped, UserError
from ..stages import STAGES

DONE = "done.json"


def run(settings: Path) -> None:
    cfg = load_config(str(settings))
    for stage in ("download", "augment", "train", "generate"):
        STAGES[stage].run(cfg)
    try:
        STAGES["score"].run(cfg)
    except StageSkipped as exc:
        print(f"score: skipped: {exc}")
    atomic.write_json(settings.parent / DONE, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S")})


def main(argv: list[str]) -> int:
    plugins.load()
    try:
        run(Path(argv[0]))
    except UserError as exc:
        print(exc, flush=True)  # the last line: what the search shows for a failed session
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
