"""`python tests/paused_pipeline.py TARGET CALLS MARKER ARGS...`: `python -m pipeline ARGS...` that stops at a
chosen point. TARGET ("package.module:function" or "package.module:Class.method") is wrapped so that once its
CALLS-th call has returned, the process writes MARKER and then sleeps for as long as MARKER exists.

Why: a test that kills a stage part-way must not race the stage. It waits for MARKER, so its kill lands at
that point however loaded the machine (a short run cannot finish first); a test that lets the stage go on
deletes MARKER. The seam lives here, in the tests: the pipeline has no hook for it.
"""
from __future__ import annotations

import functools
import importlib
import os
import runpy
import sys
import threading
import time
from pathlib import Path


def pause_after(target: str, calls: int, marker: Path) -> None:
    """Wrap `target` in this process and the workers it forks: pause once it has returned `calls` times."""
    module_name, _, attribute = target.partition(":")
    *owner_path, name = attribute.split(".")
    owner = importlib.import_module(module_name)
    for part in owner_path:
        owner = getattr(owner, part)
    real = getattr(owner, name)
    lock, returned = threading.Lock(), [0]

    @functools.wraps(real)
    def paused(*args, **kwargs):
        result = real(*args, **kwargs)
        with lock:
            returned[0] += 1
            now = returned[0] == calls
        if now:
            tmp = marker.with_name(marker.name + ".tmp")
            tmp.write_text(f"paused after {target} returned {calls} times\n")
            tmp.rename(marker)  # the test never sees a marker that is not there yet
            while marker.exists():
                time.sleep(0.05)
        return result

    setattr(owner, name, paused)


def main() -> None:
    target, calls, marker, *args = sys.argv[1:]
    sys.path[0] = os.getcwd()  # what `python -m` puts first, not this file's folder
    pause_after(target, int(calls), Path(marker))
    sys.argv = ["python -m pipeline", *args]
    runpy.run_module("pipeline", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
