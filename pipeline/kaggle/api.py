"""The operations on competitions and kernels, through the official `kaggle` client (2.2.5, kagglesdk
beneath), each one call made the way session.py makes every call (signed in, retried, refusals in one line).

What the client leaves to its caller, done here:
- `kernels_push` reports validation problems with HTTP 200 (the response's `error`): we check it;
- `kernels_output` (2.2.5 checks each file's HTTP status and refuses names outside the folder) writes
  each file in place, so a fetch killed part-way leaves a half file that looks whole: we list through the
  client and write each file atomically, keeping only the files a caller wants;
- a kernel's status and output are asked for by version: right after a push, a question that names none
  may be answered with the previous version's session;
- `list_submissions` reads the list of your submissions, and the caller polls it for a score;
- the day's submissions left are 0 both when they are used up and when the user has not joined the
  competition (kagglesdk: "all zero if the user is not on a team yet"): `submissions_left` tells which;
- a push refused because the user's GPU sessions all run comes back as the response's error:
  `SessionCapReached`, so the caller can wait and push again.

Every call used here exists in every client the project accepts (kaggle>=2.2.5,<3, pyproject.toml).
"""
from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import requests

from ..engine import atomic
from ..engine.errors import UserError
from ..engine.text import refreshes
from .session import (
    NETWORK_ERRORS,
    RETRY,
    RULES_URL,
    SESSION_CAP,
    Account,
    KaggleUnavailable,
    Retry,
    SessionCapReached,
    account,
    call,
    pages,
    scrub,
    signed_in,
    username,
)
from .status import KernelStatus, SubmissionStatus

# what callers use through this module, made in session.py
__all__ = ["RETRY", "RULES_URL", "Account", "KaggleUnavailable", "Retry", "SessionCapReached", "account",
           "username"]


def download_competition(competition: str, dest: Path, retry: Retry | None = None) -> Path:
    """Download the competition's data archive into folder `dest`; returns the zip (dest/<competition>.zip).

    Written under a temp name and renamed, so a zip at that path is always a complete download.
    """
    retry, creds, api = signed_in(retry or RETRY)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    name = f"{competition}.zip"
    atomic.remove_stale_temps(dest, name)  # a download killed with -9 leaves its temp folder (0.4 GB)
    with tempfile.TemporaryDirectory(dir=dest, prefix=f".{name}.tmp-") as tmp:
        # force: a retry starts over rather than trusting a partial file
        call(f"download {competition}",
              lambda: api.competition_download_files(competition, path=tmp, force=True, quiet=False),
              creds, retry, competition=competition)
        got = sorted(p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*")
                     if p.is_file() and not p.name.endswith(".kaggle-partial"))
        archive = Path(tmp) / name
        if got != [archive.name] or not zipfile.is_zipfile(archive):
            raise UserError(f"download {competition}: Kaggle sent {', '.join(got) or 'nothing'} "
                            "instead of a zip archive; try again later")
        target = dest / archive.name
        os.replace(archive, target)
    return target


def kernel_id(folder: Path) -> str:
    """owner/slug of the built kernel in `folder`, as its kernel-metadata.json names it."""
    return str(json.loads((Path(folder) / "kernel-metadata.json").read_text())["id"])


def push_kernel(folder: Path, retry: Retry | None, timeout_s: float) -> tuple[str, int, str]:
    """Push the kernel folder (kernel-metadata.json + notebook); returns (owner/slug, version, URL).
    `timeout_s`: the session's time limit, so that Kaggle stops a hung run there rather than after its own
    limit of many hours (the client sends it as session_timeout_seconds)."""
    retry, creds, api = signed_in(retry or RETRY)
    kernel = kernel_id(folder)
    push = functools.partial(api.kernels_push, str(folder), timeout=str(max(1, round(timeout_s))))
    resp = call(f"push {kernel}", push, creds, retry, idempotent=False)
    if resp.error and SESSION_CAP.search(resp.error):
        raise SessionCapReached(scrub(f"push {kernel}: {resp.error}", creds))
    if resp.error:
        raise UserError(scrub(f"push {kernel}: Kaggle refused the kernel: {resp.error}", creds))
    unknown = [f"{label}: {', '.join(items)}" for label, items in (
        ("competition", resp.invalid_competition_sources), ("dataset", resp.invalid_dataset_sources),
        ("kernel", resp.invalid_kernel_sources), ("model", resp.invalid_model_sources)) if items]
    if unknown and resp.version_number:  # Kaggle runs the version without them: its preflight will stop it
        print(scrub(f"push {kernel}: Kaggle does not know these sources and started version "
                     f"{resp.version_number} without them: {'; '.join(unknown)}; the notebook's preflight "
                     "stops it within a minute: fix the source in [kernel] settings and push again", creds),
              file=sys.stderr)
    elif unknown:
        raise UserError(scrub(f"push {kernel}: Kaggle does not know these sources: {'; '.join(unknown)} "
                               "(fix the source in [kernel] settings and push again)", creds))
    if not resp.version_number:
        raise UserError(f"push {kernel}: Kaggle did not say which version it created; see {resp.url}")
    return _kernel_ref(resp.ref) or kernel, int(resp.version_number), resp.url


def _kernel_ref(ref: str) -> str:
    """owner/slug from Kaggle's ref ("/code/owner/slug" or "owner/slug"); "" when it has another shape."""
    parts = [p for p in (ref or "").split("/") if p]
    parts = parts[1:] if parts[:1] == ["code"] else parts
    return "/".join(parts) if len(parts) == 2 else ""


def kernel_status(ref: str, version: int, retry: Retry | None = None) -> tuple[KernelStatus, str]:
    """(status, failure message) of version `version` of the kernel: queued / running / complete / error /
    cancel_requested / cancel_acknowledged. Asked by version: right after a push, Kaggle may answer a question
    that names none with the previous version's session (KAGGLE.md, "Today's platform")."""
    retry, creds, api = signed_in(retry or RETRY)
    resp = call(f"kernel status {ref} v{version}", lambda: api.kernels_status(f"{ref}/{version}"), creds,
                 retry)
    return KernelStatus.from_kaggle(resp.status), scrub(resp.failure_message or "", creds)


def kernel_version(ref: str, retry: Retry | None = None) -> int:
    """The number of the kernel's latest version; UserError where Kaggle does not know the kernel."""
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    retry, creds, api = signed_in(retry or RETRY)

    def get() -> Any:
        request = ApiGetKernelRequest()
        request.user_name, request.kernel_slug = ref.split("/", 1)
        with api.build_kaggle_client() as client:
            return client.kernels.kernels_api_client.get_kernel(request)

    resp = call(f"kernel {ref}", get, creds, retry)
    return int(resp.metadata.current_version_number or 0) if resp.metadata else 0


def kernel_log(ref: str, version: int | None = None,
               retry: Retry | None = None) -> Callable[[], Iterator[dict]]:
    """A reader of the log of kernel `ref` (that version, else the latest). Each call of the reader reads the
    log from its start as Kaggle's entries
    ({stream_name, time, data}): as they are written while the kernel runs, the whole log once it has ended.

    The session is opened here, in the calling thread: signing in is silenced by swapping sys.stdout, which
    must not happen in a background thread (it would swallow, or keep, another thread's output). The reader
    may then be called from any thread. Connecting is retried like every call here; a stream cut later
    raises KaggleUnavailable (Kaggle replays the log from its start, so a caller skips what it has seen).
    """
    retry, creds, api = signed_in(retry or RETRY)
    kernel = f"{ref}/{version}" if version else ref

    def connect() -> tuple[Iterator[dict], Any]:
        events = api.kernels_logs_stream(kernel)
        return events, next(events, None)  # a generator: the request goes out with its first event

    def entries(events: Iterator[dict], first: Any) -> Iterator[dict]:
        try:
            if first is None:
                return
            yield first
            yield from events
        except NETWORK_ERRORS as exc:
            raise KaggleUnavailable(scrub(f"kernel log {ref}: the stream was cut ({type(exc).__name__})",
                                           creds)) from None
        finally:
            events.close()

    def read() -> Iterator[dict]:
        return entries(*call(f"kernel log {ref}", connect, creds, retry))

    return read


def kernel_output(ref: str, version: int, dest: Path, retry: Retry | None = None,
                  wanted: Callable[[str], bool] = lambda name: True) -> list[Path]:
    """Download the output files (those `wanted`) and the log (<slug>.log) of version `version` of the kernel
    into `dest` (asked by version, as kernel_status is).

    Listed through the client; fetched here, each file written atomically (the client writes in place) and
    its name checked to stay inside `dest`, as the client checks it.
    """
    from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

    retry, creds, api = signed_in(retry or RETRY)
    owner, slug = ref.split("/", 1)

    def page(token: str | None) -> Any:
        request = ApiListKernelSessionOutputRequest()
        request.user_name, request.kernel_slug, request.page_size = owner, slug, 100
        request.page_token, request.version_label = token, f"v{version}"
        with api.build_kaggle_client() as client:
            return client.kernels.kernels_api_client.list_kernel_session_output(request)

    files, log, token = [], "", None
    while True:
        listing = call(f"kernel output {ref}", functools.partial(page, token), creds, retry)
        files += listing.files or []
        log = log or listing.log or ""
        token = listing.next_page_token
        if not token:
            break
    dest = Path(dest)
    written = []
    for item in (f for f in files if wanted(f.file_name or "")):
        target = _inside(dest, item.file_name, ref)
        call(f"download {item.file_name} of {ref}", functools.partial(_fetch, item.url, target),
              creds, retry)
        written.append(target)
    if log:
        atomic.write_text(dest / f"{slug}.log", log)
        written.append(dest / f"{slug}.log")
    return written


def _inside(dest: Path, name: str, ref: str) -> Path:
    parts = PurePosixPath(name or "").parts
    if not parts or name.startswith("/") or "\\" in name or any(p in ("..", ".") for p in parts):
        raise UserError(f"kernel output {ref}: refusing the file name {name!r} "
                        f"(it would land outside {dest})")
    return dest.joinpath(*parts)


def _fetch(url: str, target: Path) -> None:
    with requests.get(url, stream=True, timeout=(30, 300)) as resp:
        resp.raise_for_status()
        with atomic.atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                size = sum(fh.write(chunk) for chunk in resp.iter_content(1 << 20))
            expected = resp.headers.get("Content-Length")
            if expected and not resp.headers.get("Content-Encoding") and int(expected) != size:
                raise requests.exceptions.ChunkedEncodingError(f"got {size} of {expected} bytes")


@dataclass(frozen=True)
class Quota:
    """The user's weekly GPU hours, as Kaggle counts them."""

    used_h: float
    reserved_h: float  # held by the sessions running now ("quota reserved by currently-running sessions")
    total_h: float
    refresh: datetime | None  # when the quota is reset (UTC)

    @property
    def left_h(self) -> float:
        """What Kaggle's own CLI shows as left: the total less what was used."""
        return max(0.0, self.total_h - self.used_h)

    @property
    def free_h(self) -> float:
        """What a new session can still get: neither used nor held by a running session."""
        return max(0.0, self.left_h - self.reserved_h)

    def describe(self) -> str:
        """'GPU quota: 20.0 h left of 30 h (1.0 h held by running sessions), refreshes in 2 days'."""
        held = f" ({self.reserved_h:.1f} h held by running sessions)" if self.reserved_h else ""
        return (f"GPU quota: {self.left_h:.1f} h left of {self.total_h:g} h{held}, "
                f"refreshes {refreshes(self.refresh)}")


def gpu_quota(retry: Retry | None = None) -> Quota:
    """The GPU quota (an answer without one reads as 0 hours: Kaggle grants no GPU to that account)."""
    retry, creds, api = signed_in(retry or RETRY)
    resp = call("read the GPU quota", api.quota_view, creds, retry)
    gpu = resp.gpu_quota

    def hours(name: str) -> float:
        spent = getattr(gpu, name, None) if gpu is not None else None
        return spent.total_seconds() / 3600 if spent is not None else 0.0

    return Quota(hours("time_used"), hours("time_reserved"), hours("total_time_allowed"),
                 _utc(resp.quota_refresh_time))


def _utc(when: datetime | None) -> datetime | None:
    """A time the client parsed from Kaggle's UTC without a zone, with it."""
    return when.replace(tzinfo=timezone.utc) if when is not None and when.tzinfo is None else when


@dataclass(frozen=True)
class SubmissionLimits:
    """The day's submissions of this user as Kaggle counts them; Kaggle's day starts at 00:00 UTC."""

    left: int  # still accepted today; also 0 before the user has joined (`entered` tells which)
    made_today: int
    per_day: int
    entered: bool  # joined the competition, its rules accepted
    lifetime_cap: bool  # `left` is bounded by the competition's limit on all submissions, not the day's
    resets: datetime  # the next 00:00 UTC, when the day's count starts again


def submissions_left(name: str, retry: Retry | None = None) -> SubmissionLimits:
    """How many submissions competition `name` still accepts today, and whether the user has joined it
    (GetSubmissionLimits answers 0 for both; GetCompetition's user_has_entered tells them apart)."""
    from kagglesdk.competitions.types.competition_api_service import ApiGetCompetitionRequest

    retry, creds, api = signed_in(retry or RETRY)
    limits = call(f"read the submission limits of {name}",
                   functools.partial(api.competition_get_submission_limits, name), creds, retry,
                   competition=name)
    request = ApiGetCompetitionRequest()
    request.competition_name = name

    def get_competition() -> Any:
        with api.build_kaggle_client() as client:
            return client.competitions.competition_api_client.get_competition(request)

    joined = call(f"read competition {name}", get_competition, creds, retry, competition=name)
    now = datetime.now(timezone.utc)
    midnight = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
    return SubmissionLimits(int(limits.num_allowed_now), int(limits.num_today),
                            int(joined.max_daily_submissions or 0), bool(joined.user_has_entered),
                            bool(limits.limited_by_total), midnight)


def competition_folders(name: str, retry: Retry | None = None) -> dict[str, int]:
    """The top folders of competition `name`'s data and how many files each holds (ListDataTreeFiles: one
    answer, where listing every file would take hundreds)."""
    from kagglesdk.competitions.types.competition_api_service import ApiListDataTreeFilesRequest

    retry, creds, api = signed_in(retry or RETRY)

    def page(token: str) -> Any:
        request = ApiListDataTreeFilesRequest()
        request.competition_name, request.page_size, request.page_token = name, 100, token
        with api.build_kaggle_client() as client:
            return client.competitions.competition_api_client.list_data_tree_files(request)

    folders: dict[str, int] = {}
    for content in pages(f"list the data of {name}", page, creds, retry, competition=name):
        folders.update({d.name: int(d.total_files or 0) for d in content.directories or []})
        folders.update({f.name: 1 for f in content.files or []})
    return folders


@dataclass(frozen=True)
class Submission:
    """One of your submissions to a competition, as Kaggle lists it."""

    ref: int
    date: str  # ISO time, UTC
    description: str
    status: SubmissionStatus
    public_score: str  # "" until scored
    error: str = ""


SUBMISSIONS_PAGE = 50
SUBMISSIONS_PAGES = 20  # at most 1,000 submissions: far more than the daily limits allow in a competition


def list_submissions(competition: str, retry: Retry | None = None) -> list[Submission]:
    """Your submissions to the competition, newest first, with their public scores."""
    retry, creds, api = signed_in(retry or RETRY)
    found: list[Submission] = []
    for page in range(1, SUBMISSIONS_PAGES + 1):
        batch = call(f"list submissions of {competition}",
                      functools.partial(api.competition_submissions, competition, page_number=page,
                                        page_size=SUBMISSIONS_PAGE),
                      creds, retry, competition=competition) or []
        found += [Submission(ref=int(s.ref), date=s.date.isoformat() if s.date else "",
                             description=s.description or "",
                             status=SubmissionStatus.from_kaggle(s.status),
                             public_score=s.public_score or "",
                             error=scrub(s.error_description or "", creds))
                  for s in batch if s is not None]
        if len(batch) < SUBMISSIONS_PAGE:
            break
    return found


def submit_code(competition: str, ref: str, version: int, file_name: str, message: str,
                retry: Retry | None = None) -> str:
    """Submit output `file_name` of kernel `ref` version `version` to the competition; Kaggle's answer."""
    retry, creds, api = signed_in(retry or RETRY)
    resp = call(f"submit {ref} version {version}",
                lambda: api.competition_submit_code(file_name=file_name, message=message,
                                                    competition=competition, kernel=ref,
                                                    kernel_version=version, quiet=True),
                creds, retry, idempotent=False, competition=competition)
    return resp.message or "submitted"

