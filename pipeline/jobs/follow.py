"""What a command shows of a job while it runs on Kaggle: one line per status change, its log as it grows
(`kaggle | ` lines), and, when it failed, the tail of its log and one line saying how it ended.

The status poll (runner.py) alone decides when the run has ended, so a log stream that ends, drops or fails
changes nothing.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..engine.errors import UserError
from ..kaggle import api as kaggle_api
from ..kaggle import log as kaggle_log
from .record import Job

LOG_TAIL_LINES = 40
LOG_PREFIX = "kaggle | "
LOG_FINAL_READ_S = 15.0  # after the run ends: how long the follower may take to show the rest of the log
_print_lock = threading.Lock()  # the log follower and the progress line share the terminal


def progress(cmd: str, line: str, changed: bool) -> None:
    """One line per status change; on a terminal the current line is also kept up to date."""
    with _print_lock:
        if sys.stdout.isatty():
            print(f"\r{cmd}: {line}\033[K", end="\n" if changed else "", flush=True)
        elif changed:
            print(f"{cmd}: {line}", flush=True)


class LogFollower:
    """Shows a running kernel's log as it grows, each line prefixed `kaggle | `, from a daemon thread.

    Kaggle replays the whole log on every connection, so a reconnection (after a cut, or after the
    stream ended while the run goes on) skips the entries already shown. Nothing here can end or break
    the wait: a failed read (a cut, an error, a refusal: the client's UserError) only makes the next one
    come later (up to MAX_PAUSE_S), and once the run has ended the whole log is read once more (FINAL_TRIES
    if that fails).
    """

    MAX_PAUSE_S = 30.0
    FINAL_TRIES, FINAL_PAUSE_S = 3, 0.5  # reads of the whole log once the run has ended, if they fail

    def __init__(self, ref: str, version: int, retry: kaggle_api.Retry) -> None:
        self.ref, self.version = ref, version
        self.retry = kaggle_api.Retry(tries=1, delay_s=retry.delay_s, max_delay_s=retry.max_delay_s)
        self.shown = 0  # log entries printed so far
        self.error: Exception | None = None  # the last thing that interrupted the following, for a debugger
        self._ended = threading.Event()  # the run has ended: one last read, then stop
        self._closed = False  # finish() has returned: never print again
        self._out = sys.stdout  # taken now: the client swaps sys.stdout for a moment while it signs in
        self._read: Callable[[], Iterator[dict]] | None = None
        self._thread = threading.Thread(target=self._follow, name="kaggle-log", daemon=True)

    def start(self) -> None:
        """Open the log (here, in the calling thread: see kaggle_api.kernel_log) and follow it in a thread."""
        try:
            self._read = kaggle_api.kernel_log(self.ref, self.version, self.retry)
        except UserError as exc:  # cannot even sign in now: the status poll will say what is wrong
            self.error = exc
        if self._read is not None:
            self._thread.start()

    def finish(self, wait_s: float) -> None:
        """The run has ended (or the wait is over): let the follower show the rest for up to `wait_s`."""
        self._ended.set()
        if wait_s > 0 and self._thread.is_alive():
            self._thread.join(wait_s)
        with _print_lock:
            self._closed = True

    def _follow(self) -> None:
        quiet, final_tries = 0, 0  # reads in a row that showed nothing new; failed reads after the run ended
        while not self._closed:
            last_read = self._ended.is_set()  # the run is over: this read gets the whole log
            before = self.shown
            try:
                for index, event in enumerate(self._read()):
                    if index >= self.shown:
                        self.shown = index + 1
                        self._show(event)
                if last_read:
                    return
            # a cut, a refusal (no log yet while queued?), Kaggle unreachable: the wait goes on, and the log
            # is read again later (a bug in the client ends this thread with its traceback, never the wait)
            except UserError as exc:
                self.error = exc
            if last_read:
                final_tries += 1
                if final_tries >= self.FINAL_TRIES:
                    return
                time.sleep(self.FINAL_PAUSE_S)  # a failed last read is tried again soon
                continue
            quiet = 0 if self.shown > before else quiet + 1
            self._ended.wait(min(2.0 ** quiet, self.MAX_PAUSE_S))  # woken at once when the run ends

    def _show(self, event: dict) -> None:
        lines = kaggle_log.lines(str(event.get("data") or ""))
        with _print_lock:
            if self._closed:
                return
            clear = "\r\033[K" if self._out.isatty() else ""  # over the progress line, on a terminal
            for line in lines:
                if line.strip():
                    print(f"{clear}{LOG_PREFIX}{line}", file=self._out, flush=True)


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines a kernel printed."""
    tail = kaggle_log.lines(kaggle_log.read(log).rstrip("\n"))[-lines:]
    return "\n".join([f"--- last {len(tail)} lines of {log} ---", *tail, "---"])


def report_failure(command: str, kernel: Job, failure: str, log: Path) -> None:
    """The tail of a failed kernel's log and one line saying how it ended."""
    print(log_tail(log) if log.is_file() else "(Kaggle returned no log)", file=sys.stderr)
    print(f"{command}: kernel {kernel.label} ended with status '{kernel.status.value}'"
          f"{': ' + failure if failure else ''}; full log: {log if log.is_file() else kernel.url}",
          file=sys.stderr)
