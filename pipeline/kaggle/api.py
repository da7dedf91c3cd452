"""The only module that talks to Kaggle, through the official `kaggle` client (2.2.4, kagglesdk beneath).

Why a wrapper rather than calling the client directly:
- `import kaggle` authenticates at import time and exits the process without credentials, so the
  client is imported lazily, after our own check that says where kaggle.json goes;
- the client retries almost nothing and words HTTP errors as it likes (a 401 on a kernel "blames a
  wrong slug"): here transient failures (5xx, 429, resets, timeouts) are retried with exponential
  backoff, and 401/403/404 stop at once with what they mean for this competition. A push or a
  submission is retried only when the request cannot have reached Kaggle: never twice submitted;
- `kernels_push` reports validation problems with HTTP 200, and `kernels_output` fetches files with
  a bare `requests.get` (no status check, names joined unchecked): we check both;
- a running kernel's log is streamed only by newer clients (`kernels_logs_stream`, kaggle 2.2.5):
  `kernel_log` says None where the installed one cannot;
- not every client version can wait for a submission's score (`competition_submit_code(wait=...)`):
  `list_submissions` reads the list of your submissions, which every version offers, and the caller polls;
- the GPU quota and the day's submissions left are read only by newer clients (`quota_view`,
  `competition_get_submission_limits`): `gpu_quota` and `submissions_left` say None where they cannot;
- a push refused because the user's GPU sessions all run comes back as the response's error:
  `SessionCapReached`, so the caller can wait and push again;
- the key never appears in a message: every message we build is scrubbed of it.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import requests
import urllib3

from ..engine import atomic
from ..engine.errors import UserError
from .credentials import TOKEN_HELP, Credentials, config_dir, credentials

T = TypeVar("T")
RULES_URL = "https://www.kaggle.com/competitions/{competition}/rules"


@dataclass(frozen=True)
class Retry:
    tries: int = 4
    delay_s: float = 2.0  # first pause; doubles after each failure
    max_delay_s: float = 60.0


RETRY = Retry()  # the default; callers with settings pass their own


class KaggleUnavailable(UserError):
    """Kaggle kept failing transiently after every retry: worth trying again later (a poll loop goes on)."""


class SessionCapReached(UserError):
    """Kaggle refused a push because the user's GPU sessions are all running: nothing was pushed, and the same
    push goes through once one of them ends."""


# How Kaggle words a push refused for the concurrent-session cap (KAGGLE.md: "Maximum batch GPU session count
# of 2 reached"), in the push response's error field.
SESSION_CAP = re.compile(r"maximum batch gpu session count", re.I)



def username() -> str:
    """The Kaggle user name of the credentials (asks Kaggle only for an access token)."""
    creds = credentials()
    return creds.username or _session(creds, RETRY).config_values["username"]


def _session(creds: Credentials, retry: Retry) -> Any:
    """An authenticated KaggleApi that follows the environment as it is now."""
    # its import-time auth help and warnings: ours are clearer
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
    # KaggleApi fixes these when it is first imported; a long-lived process (or a test) may have changed them.
    api.config_dir = str(config_dir())
    api.config = str(config_dir() / "kaggle.json")
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []

    def sign_in() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                api.authenticate()
            except SystemExit:  # only when Kaggle rejected an access token
                raise UserError(f"Kaggle did not accept {creds.source}: "
                                f"create a new one ({TOKEN_HELP})") from None

    _call("sign in to Kaggle", sign_in, creds, retry)
    return api


def _call(action: str, fn: Callable[[], T], creds: Credentials, retry: Retry, idempotent: bool = True,
         competition: str = "gan-getting-started") -> T:
    """fn(), retried while it fails transiently; other failures become one-line UserErrors."""
    for attempt in range(1, retry.tries + 1):
        try:
            return fn()
        except UserError as exc:
            raise type(exc)(_scrub(str(exc), creds)) from None
        except Exception as exc:
            code = _http_status(exc)
            reason = f"HTTP {code}" if code is not None else type(exc).__name__
            if code is None and not isinstance(exc, NETWORK_ERRORS):
                if isinstance(exc, ValueError):  # the client's own validation of what we gave it
                    raise UserError(_scrub(f"{action}: {exc}", creds)) from None
                raise  # a bug: keep its traceback
            if not _transient(exc, code, idempotent):
                raise UserError(_scrub(_refusal(action, code, reason, competition), creds)) from None
            if attempt == retry.tries:
                raise KaggleUnavailable(f"{action}: Kaggle still failing after {retry.tries} tries "
                                        f"({reason}); check your connection and try again later") from None
            delay = min(retry.delay_s * 2 ** (attempt - 1), retry.max_delay_s)
            if code == 429:
                delay = min(max(delay, _retry_after(exc)), retry.max_delay_s)
            print(f"{action}: {reason}; retrying in {delay:.0f}s (try {attempt + 1} of {retry.tries})",
                  file=sys.stderr)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status behind `exc`, also when the client re-raised it as a ValueError."""
    seen = 0
    while exc is not None and seen < 5:
        response = getattr(exc, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return int(response.status_code)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


NETWORK_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                  requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError)


def _transient(exc: Exception, code: int | None, idempotent: bool) -> bool:
    """Worth retrying: always when Kaggle cannot have acted on the request, else only when repeating is
    harmless."""
    if code is not None:
        return code == 429 or (idempotent and code >= 500)  # 429: the request was not carried out
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, urllib3.exceptions.ProxyError):  # the proxy itself could not be reached
        reason = getattr(reason, "original_error", None)
    never_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or isinstance(
        reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))
    return idempotent or never_sent


def _retry_after(exc: BaseException) -> float:
    try:
        return float(exc.response.headers.get("Retry-After", 0))  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return 0.0


def _refusal(action: str, code: int | None, reason: str, competition: str) -> str:
    if code is None or code >= 500:  # only a push or a submission gets here: repeating it could do it twice
        return (f"{action}: {reason} from Kaggle, so it may or may not have been done: check on kaggle.com "
                "before trying again")
    if code == 401:
        return (f"{action}: Kaggle refused the credentials (HTTP 401): check the username and key in "
                f"kaggle.json (or KAGGLE_USERNAME/KAGGLE_KEY), or create a new token ({TOKEN_HELP})")
    if code == 403:
        return (f"{action}: Kaggle refused access (HTTP 403): accept the competition rules at "
                f"{RULES_URL.format(competition=competition)}, or check the kernel slug")
    if code == 404:
        return f"{action}: not found on Kaggle (HTTP 404): check the competition name and the kernel slug"
    return f"{action}: Kaggle refused the request (HTTP {code})"


def _scrub(message: str, creds: Credentials) -> str:
    return message.replace(creds.secret, "***") if creds.secret else message


# -- the operations -----------------------------------------------------------------------------------

def download_competition(competition: str, dest: Path, retry: Retry | None = None) -> Path:
    """Download the competition's data archive into folder `dest`; returns the zip (dest/<competition>.zip).

    Written under a temp name and renamed, so a zip at that path is always a complete download.
    """
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    name = f"{competition}.zip"
    atomic.remove_stale_temps(dest, name)  # a download killed with -9 leaves its temp folder (0.4 GB)
    with tempfile.TemporaryDirectory(dir=dest, prefix=f".{name}.tmp-") as tmp:
        # force: a retry starts over rather than trusting a partial file
        _call(f"download {competition}",
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


def push_kernel(folder: Path, retry: Retry | None = None, timeout_s: float = 0) -> tuple[str, int, str]:
    """Push the kernel folder (kernel-metadata.json + notebook); returns (owner/slug, version, URL).
    `timeout_s`: the session's time limit to ask for, where the installed client can (kaggle >= 2.2.5)."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    kernel_id = json.loads((Path(folder) / "kernel-metadata.json").read_text())["id"]
    asks_timeout = timeout_s and "timeout" in inspect.signature(api.kernels_push).parameters
    options = {"timeout": int(timeout_s)} if asks_timeout else {}
    push = functools.partial(api.kernels_push, str(folder), **options)
    resp = _call(f"push {kernel_id}", push, creds, retry, idempotent=False)
    if resp.error and SESSION_CAP.search(resp.error):
        raise SessionCapReached(_scrub(f"push {kernel_id}: {resp.error}", creds))
    problems = [resp.error] if resp.error else []
    for label, items in (("invalid competition sources", resp.invalid_competition_sources),
                         ("invalid dataset sources", resp.invalid_dataset_sources),
                         ("invalid kernel sources", resp.invalid_kernel_sources),
                         ("invalid model sources", resp.invalid_model_sources)):
        if items:
            problems.append(f"{label}: {', '.join(items)}")
    if problems:
        raise UserError(_scrub(f"push {kernel_id}: Kaggle refused the kernel: {'; '.join(problems)} "
                               f"(fix kernel-metadata.json's source, in [kernel] settings, and push again)",
                               creds))
    if not resp.version_number:
        raise UserError(f"push {kernel_id}: Kaggle did not say which version it created; see {resp.url}")
    return _kernel_ref(resp.ref) or kernel_id, int(resp.version_number), resp.url


def _kernel_ref(ref: str) -> str:
    """owner/slug from Kaggle's ref ("/code/owner/slug" or "owner/slug"); "" when it has another shape."""
    parts = [p for p in (ref or "").split("/") if p]
    parts = parts[1:] if parts[:1] == ["code"] else parts
    return "/".join(parts) if len(parts) == 2 else ""


def kernel_status(ref: str, retry: Retry | None = None) -> tuple[str, str]:
    """(status, failure message) of the kernel's latest version: queued / running / complete / error / ..."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    resp = _call(f"kernel status {ref}", lambda: api.kernels_status(ref), creds, retry)
    status = getattr(resp.status, "name", str(resp.status)).lower()
    return status, _scrub(resp.failure_message or "", creds)


def kernel_version(ref: str, retry: Retry | None = None) -> int:
    """The number of the kernel's latest version; UserError where Kaggle does not know the kernel."""
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)

    def get() -> Any:
        request = ApiGetKernelRequest()
        request.user_name, request.kernel_slug = ref.split("/", 1)
        with api.build_kaggle_client() as client:
            return client.kernels.kernels_api_client.get_kernel(request)

    resp = _call(f"kernel {ref}", get, creds, retry)
    return int(resp.metadata.current_version_number or 0) if resp.metadata else 0


def kernel_log(ref: str, version: int | None = None,
               retry: Retry | None = None) -> Callable[[], Iterator[dict]] | None:
    """A reader of the log of kernel `ref` (that version, else the latest), or None when the installed client
    cannot stream logs. Each call of the reader reads the log from its start as Kaggle's entries
    ({stream_name, time, data}): as they are written while the kernel runs, the whole log once it has ended.

    The session is opened here, in the calling thread: signing in is silenced by swapping sys.stdout, which
    must not happen in a background thread (it would swallow, or keep, another thread's output). The reader
    may then be called from any thread. Connecting is retried like every call here; a stream cut later
    raises KaggleUnavailable (Kaggle replays the log from its start, so a caller skips what it has seen).
    """
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    if not hasattr(api, "kernels_logs_stream"):
        return None
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
            raise KaggleUnavailable(_scrub(f"kernel log {ref}: the stream was cut ({type(exc).__name__})",
                                           creds)) from None
        finally:
            events.close()

    def read() -> Iterator[dict]:
        return entries(*_call(f"kernel log {ref}", connect, creds, retry))

    return read


def kernel_output(ref: str, dest: Path, retry: Retry | None = None,
                  wanted: Callable[[str], bool] = lambda name: True) -> list[Path]:
    """Download the output files (those `wanted`) and the log (<slug>.log) of the kernel's latest version
    into `dest`.

    Listed through the client; fetched here, because the client writes whatever name the listing
    gives (an absolute or ../ name lands outside `dest`) and never checks the HTTP status.
    """
    from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    owner, slug = ref.split("/", 1)

    def page(token: str | None) -> Any:
        request = ApiListKernelSessionOutputRequest()
        request.user_name, request.kernel_slug, request.page_size = owner, slug, 100
        request.page_token = token
        with api.build_kaggle_client() as client:
            return client.kernels.kernels_api_client.list_kernel_session_output(request)

    files, log, token = [], "", None
    while True:
        listing = _call(f"kernel output {ref}", functools.partial(page, token), creds, retry)
        files += listing.files or []
        log = log or listing.log or ""
        token = listing.next_page_token
        if not token:
            break
    dest = Path(dest)
    written = []
    for item in (f for f in files if wanted(f.file_name or "")):
        target = _inside(dest, item.file_name, ref)
        _call(f"download {item.file_name} of {ref}", functools.partial(_fetch, item.url, target),
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
    total_h: float
    refresh: datetime | None  # when the quota is reset (UTC)

    @property
    def left_h(self) -> float:
        return max(0.0, self.total_h - self.used_h)


def gpu_quota(retry: Retry | None = None) -> Quota | None:
    """The GPU quota, or None where the installed client cannot read it (kaggle < 2.2.1: `quota_view`)."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    if not hasattr(api, "quota_view"):
        return None
    resp = _call("read the GPU quota", api.quota_view, creds, retry)
    gpu = resp.gpu_quota
    if gpu is None or gpu.total_time_allowed is None:
        return None
    used = gpu.time_used.total_seconds() / 3600 if gpu.time_used is not None else 0.0
    refresh = resp.quota_refresh_time
    if refresh is not None and refresh.tzinfo is None:
        refresh = refresh.replace(tzinfo=timezone.utc)  # the client parses Kaggle's UTC times without a zone
    return Quota(used, gpu.total_time_allowed.total_seconds() / 3600, refresh)


def submissions_left(competition: str, retry: Retry | None = None) -> int | None:
    """How many submissions the competition still accepts today, or None where the installed client cannot
    tell (`competition_get_submission_limits`)."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    if not hasattr(api, "competition_get_submission_limits"):
        return None
    limits = _call(f"read the submission limits of {competition}",
                   functools.partial(api.competition_get_submission_limits, competition), creds, retry,
                   competition=competition)
    return int(limits.num_allowed_now)


@dataclass(frozen=True)
class Submission:
    """One of your submissions to a competition, as Kaggle lists it."""

    ref: int
    date: str  # ISO time, UTC
    description: str
    status: str  # pending | complete | error
    public_score: str  # "" until scored
    error: str = ""


SUBMISSIONS_PAGE = 50
SUBMISSIONS_PAGES = 20  # at most 1,000 submissions: far more than the daily limits allow in a competition


def list_submissions(competition: str, retry: Retry | None = None) -> list[Submission]:
    """Your submissions to the competition, newest first, with their public scores."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    found: list[Submission] = []
    for page in range(1, SUBMISSIONS_PAGES + 1):
        batch = _call(f"list submissions of {competition}",
                      functools.partial(api.competition_submissions, competition, page_number=page,
                                        page_size=SUBMISSIONS_PAGE),
                      creds, retry, competition=competition) or []
        found += [Submission(ref=int(s.ref), date=s.date.isoformat() if s.date else "",
                             description=s.description or "",
                             status=getattr(s.status, "name", str(s.status)).lower(),
                             public_score=s.public_score or "",
                             error=_scrub(s.error_description or "", creds))
                  for s in batch if s is not None]
        if len(batch) < SUBMISSIONS_PAGE:
            break
    return found


def submit_code(competition: str, ref: str, version: int, file_name: str, message: str,
                retry: Retry | None = None) -> str:
    """Submit output `file_name` of kernel `ref` version `version` to the competition; Kaggle's answer."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    resp = _call(f"submit {ref} version {version}",
                lambda: api.competition_submit_code(file_name=file_name, message=message,
                                                    competition=competition, kernel=ref,
                                                    kernel_version=version, quiet=True),
                creds, retry, idempotent=False, competition=competition)
    return resp.message or "submitted"

