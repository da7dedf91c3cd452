"""`push` and `submit`: the kernel goes to Kaggle, runs there, and its images.zip is checked before it is
submitted.

submit = build the kernel, push it, follow its run, fetch its output into submissions/kaggle/<version>/,
check images.zip against the competition's rules, score it locally when the FID weights are here,
then submit that kernel version and wait for its public score (scores.py). Nothing is submitted that was
not checked here first. The fetched zip gets a provenance record beside it naming the kernel version, so
its leaderboard rows (local and public) are that version's own.

A Kaggle run takes hours, so following it must survive Ctrl-C, a closed laptop or a timeout: the
pushed version is remembered in submissions/kaggle/pending.json, and the next `submit` with an
unchanged kernel follows that version instead of pushing (and paying for) another run. While it runs,
its log is shown as it grows (`kaggle | ` lines) where the installed client can stream it; the status
poll alone decides when the run has ended, so a log stream that ends, drops or fails changes nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..engine import atomic
from ..engine.chain import STAGES
from ..engine.errors import StageSkipped, UserError
from ..engine.stage import read_stamp
from ..generate import provenance
from . import api as kaggle_api
from . import scores
from .kernel import kernel_settings

LOG_TAIL_LINES = 40
LOG_PREFIX = "kaggle | "
LOG_FINAL_READ_S = 15.0  # after the run ends: how long the follower may take to show the rest of the log
_print_lock = threading.Lock()  # the log follower and the progress line share the terminal


def push_command(cfg: Config, args: argparse.Namespace) -> int:
    """Build the kernel and push it; prints its URL and version."""
    folder = STAGES["kernel"].run(cfg, force=args.force)
    ref, version, url = kaggle_api.push_kernel(folder, _retry(cfg))
    print(f"push: {ref} version {version} is running on Kaggle: {url}")
    return 0


def submit_command(cfg: Config, args: argparse.Namespace) -> int:
    """Push (or resume), wait, fetch, check, score, submit; non-zero exit when the kernel failed."""
    retry = _retry(cfg)
    if cfg.submit.version:  # a run already fetched (and checked) by an earlier submit, e.g. a dry run
        folder = STAGES["kernel"].run(cfg)
        ref = json.loads((folder / "kernel-metadata.json").read_text())["id"]
        version, dest = cfg.submit.version, _output_dir(cfg, cfg.submit.version)
        if not (dest / "images.zip").is_file():
            raise UserError(f"submit.version={version}: no fetched output in {dest}; run submit without "
                            "submit.version to run the kernel and fetch it")
    else:
        ref, version, url = _push_or_resume(cfg, args.force, retry)
        status, failure = _wait(cfg, ref, version, url, retry)
        dest = _output_dir(cfg, version)
        files = kaggle_api.kernel_output(ref, dest, retry)
        _pending_path(cfg).unlink(missing_ok=True)  # finished either way: the next submit pushes anew
        log = dest / f"{ref.split('/')[1]}.log"
        if status != "complete":
            print(log_tail(log) if log.is_file() else "(Kaggle returned no log)", file=sys.stderr)
            print(f"submit: kernel {ref} version {version} ended with status '{status}'"
                  f"{': ' + failure if failure else ''}; full log: {log if log.is_file() else url}",
                  file=sys.stderr)
            return 1
        if not (dest / "images.zip").is_file():
            names = ", ".join(p.name for p in files) or "nothing"
            raise UserError(f"submit: kernel {ref} version {version} produced {names} but no images.zip; "
                            f"see its log ({log})")
    return _check_and_submit(cfg, ref, version, dest / "images.zip", retry)


def _check_and_submit(cfg: Config, ref: str, version: int, zip_path: Path, retry: kaggle_api.Retry) -> int:
    from ..submission.archive import check_zip

    summary = check_zip(zip_path, cfg.zip, workers=cfg.hardware.workers)
    print(f"submit: {zip_path}: {summary}")
    label = scores.kernel_label(ref, version)
    made_by = replace(provenance.read(zip_path) or provenance.UNKNOWN, kernel=label)
    provenance.write_beside(zip_path, made_by)  # the version's own leaderboard row, however it is scored
    _score(cfg, zip_path)
    kcfg = kernel_settings(cfg)
    message = scores.describe(cfg.submit.message or f"{kcfg.run_dir.name} {kcfg.train_hash()[:8]}", label)
    if cfg.submit.dry_run:
        print(f"submit: dry run: {zip_path} is checked and was not submitted. To submit this run as it is: "
              f"make submit SET=submit.version={version} (plus the same CONFIG/SET)")
        return 0
    answer = kaggle_api.submit_code(cfg.download.competition, ref, version, "images.zip", message, retry)
    print(f"submit: {answer}: {ref} version {version} ('{message}'); "
          f"https://www.kaggle.com/competitions/{cfg.download.competition}/submissions")
    if not cfg.submit.wait_score_min:
        print(f"submit: not waiting for the public score (submit.wait_score_min=0): {scores.LATER}")
        return 0
    scored = scores.wait_for_public(cfg, label, retry)
    if scored is None:
        print(f"submit: no public score after {cfg.submit.wait_score_min:g} min (submit.wait_score_min): "
              f"{scores.LATER}")
        return 0
    outcome = scores.record(cfg, made_by, scored)
    print(f"submit: {outcome}", file=sys.stdout if scored.status == "complete" else sys.stderr)
    return 0 if scored.status == "complete" else 1


def _output_dir(cfg: Config, version: int) -> Path:
    return cfg.submissions_dir / "kaggle" / str(version)


def _retry(cfg: Config) -> kaggle_api.Retry:
    return kaggle_api.Retry(tries=cfg.submit.retries, delay_s=cfg.submit.retry_delay_s)


def _pending_path(cfg: Config) -> Path:
    return cfg.submissions_dir / "kaggle" / "pending.json"


def _push_or_resume(cfg: Config, force: bool, retry: kaggle_api.Retry) -> tuple[str, int, str]:
    """Follow the version pushed by an earlier, unfinished submit of the same kernel, or push it now."""
    folder = STAGES["kernel"].run(cfg, force=force)
    key = read_stamp(folder).get("key", "")
    try:
        pending = json.loads(_pending_path(cfg).read_text())
    except (OSError, ValueError):
        pending = {}
    if not force and pending.get("kernel_key") == key:
        print(f"submit: following {pending['ref']} version {pending['version']}, pushed earlier and "
              f"not finished (--force pushes a new run)")
        return pending["ref"], int(pending["version"]), pending["url"]
    ref, version, url = kaggle_api.push_kernel(folder, retry)
    atomic.write_json(_pending_path(cfg), {"ref": ref, "version": version, "url": url, "kernel_key": key,
                                          "pushed": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"submit: pushed {ref} version {version}: {url}")
    return ref, version, url


def _wait(cfg: Config, ref: str, version: int, url: str, retry: kaggle_api.Retry) -> tuple[str, str]:
    """Poll until the kernel is complete or failed: (status, failure message). Ctrl-C and the time limit
    stop following it, never the run itself."""
    start = time.monotonic()
    limit_s = cfg.submit.poll_timeout_min * 60
    pause = cfg.submit.poll_interval_s / 8  # the first checks come soon: a broken kernel fails fast
    status, last = "", ""
    follower = LogFollower(ref, version, retry)
    try:
        follower.start()
        while True:
            try:
                status, failure = kaggle_api.kernel_status(ref, retry)
            except kaggle_api.KaggleUnavailable as exc:  # a network blip must not end hours of waiting
                print(f"\nsubmit: {exc}; still waiting", file=sys.stderr)
                status, failure = last or "unknown", ""
            if status in ("complete", "error", "cancel_acknowledged"):
                follower.finish(LOG_FINAL_READ_S)  # the last lines of the log come before the verdict
                _progress(f"{ref} v{version}: {status} after {_clock(time.monotonic() - start)}",
                          last, status)
                return status, failure
            _progress(f"{ref} v{version}: {status}, {_clock(time.monotonic() - start)} "
                      f"(gives up following after {cfg.submit.poll_timeout_min:g} min)", last, status)
            last = status
            if time.monotonic() - start + pause > limit_s:
                raise UserError(f"submit: {ref} version {version} is still {status} after "
                                f"{cfg.submit.poll_timeout_min:g} min (submit.poll_timeout_min); "
                                f"it keeps running on Kaggle ({url}): "
                                f"run the same submit again to keep following it")
            time.sleep(pause)
            pause = min(pause * 2, cfg.submit.poll_interval_s)
    except KeyboardInterrupt:
        follower.finish(0)
        print(f"\nsubmit: stopped following {ref} version {version}; "
              f"the kernel keeps running on Kaggle ({url}). "
              f"Run the same submit again to resume (it will not push again), or check it with "
              f"`kaggle kernels status {ref}`", file=sys.stderr)
        raise
    finally:
        follower.finish(0)


def _progress(line: str, last: str, status: str) -> None:
    """One line per status change; on a terminal the current line is also kept up to date."""
    with _print_lock:
        if sys.stdout.isatty():
            print(f"\rsubmit: {line}\033[K", end="" if status == last else "\n", flush=True)
        elif status != last:
            print(f"submit: {line}", flush=True)


class LogFollower:
    """Shows a running kernel's log as it grows, each line prefixed `kaggle | `, from a daemon thread.

    Kaggle replays the whole log on every connection, so a reconnection (after a cut, or after the
    stream ended while the run goes on) skips the entries already shown. Nothing here can end or break
    the wait: a failed read (a cut, an error, a refusal) only makes the next one come later (up to
    MAX_PAUSE_S), and once the run has ended the whole log is read once more (FINAL_TRIES if that fails).
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
        if self._read is not None:  # else the installed client cannot stream logs: the status line alone
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
            # a cut, a refusal (no log yet while queued?), a client bug: the wait goes on, and the log is
            # read again later
            except Exception as exc:  # noqa: BLE001
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
        text = str(event.get("data") or "")
        lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]  # a progress bar: its last state
        with _print_lock:
            if self._closed:
                return
            clear = "\r\033[K" if self._out.isatty() else ""  # over the progress line, on a terminal
            for line in lines:
                if line.strip():
                    print(f"{clear}{LOG_PREFIX}{line}", file=self._out, flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines a kernel printed. Kaggle's log is a JSON list of {stream_name, time, data} entries."""
    text = log.read_text(errors="replace")
    try:
        text = "".join(entry.get("data", "") for entry in json.loads(text))
    except (ValueError, TypeError, AttributeError):
        pass  # not Kaggle's JSON form: show it as it is
    tail = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join([f"--- last {len(tail)} lines of {log} ---", *tail, "---"])


def _score(cfg: Config, zip_path: Path) -> None:
    """Local MiFID of the kernel's images.zip against the reference paintings (score.real, else the local
    Monets), as a leaderboard row marked kaggle under the kernel version, when the FID weights are here."""
    monets = cfg.raw_dir / "monet_jpg"
    if not monets.is_dir() and not cfg.score.real:
        print(f"submit: local score skipped: no Monets at {monets} to score against (make download)")
        return
    from ..metrics.score import score_images

    try:
        score_images(cfg, zip_path, source="kaggle")
    except StageSkipped as exc:
        print(f"submit: local score skipped: {exc}")
