"""The only module that talks to Kaggle, through the official `kaggle` client (2.2.5, kagglesdk beneath).

Why a wrapper rather than calling the client directly:
- `import kaggle` authenticates at import time and exits the process without credentials, so the
  client is imported lazily, after our own check that says where credentials go; the client then signs
  in with what it finds, in its own order (credentials.py), and says whose they are (`account`);
- the client retries almost nothing and words HTTP errors as it likes (a 401 on a kernel "blames a
  wrong slug"): here transient failures (5xx, 429, resets, timeouts) are retried with exponential
  backoff, and 401/403/404 stop at once with what they mean for this competition, Kaggle's own words
  kept. A push or a submission is retried only when the request cannot have reached Kaggle: never twice
  submitted;
- `kernels_push` reports validation problems with HTTP 200, and `kernels_output` fetches files with
  a bare `requests.get` (no status check, names joined unchecked): we check both;
- `list_submissions` reads the list of your submissions, and the caller polls it for a score;
- the day's submissions left are 0 both when they are used up and when the user has not joined the
  competition (kagglesdk: "all zero if the user is not on a team yet"): `submissions_left` tells which;
- a dataset (an uploaded run, the FID weights) goes up through the client's dataset calls, which upload each
  file and then create the dataset or its next version; Kaggle processes the files after answering, so
  `dataset_state` says when the new version is ready;
- a push refused because the user's GPU sessions all run comes back as the response's error:
  `SessionCapReached`, so the caller can wait and push again;
- no secret appears in a message: every message we build is scrubbed of every token and key found.

Every call used here exists in every client the project accepts (kaggle>=2.2.5,<3, pyproject.toml).
"""
from __future__ import annotations

import contextlib
import functools
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
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import requests
import urllib3

from ..engine import atomic
from ..engine.errors import UserError
from .credentials import TOKEN_HELP, Credentials, config_dir, credentials
from .status import KernelStatus

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


@dataclass(frozen=True)
class Account:
    """Whose credentials the client signed in with, and where they lie (never the secret)."""

    username: str
    source: str


def account(retry: Retry | None = None) -> Account:
    """The account the client signs in as, by its own choice among the credentials found (an access token
    before kaggle.json); asks Kaggle only for a token (whose user it is)."""
    creds = credentials()
    api = _session(creds, retry or RETRY)
    return Account(api.config_values["username"], creds.source(api.config_values.get("auth_method", "")))


def username() -> str:
    """The Kaggle user name of the credentials the client signs in with."""
    return account().username


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
            except SystemExit:  # every credential found was refused (an expired token, no key beside it)
                raise UserError(f"Kaggle accepted none of the credentials in {creds.found}: "
                                f"create a new token ({TOKEN_HELP})") from None

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
            code, said = _http_error(exc)
            reason = f"HTTP {code}" if code is not None else type(exc).__name__
            if code is None and not isinstance(exc, NETWORK_ERRORS):
                if isinstance(exc, ValueError):  # the client's own validation of what we gave it
                    raise UserError(_scrub(f"{action}: {exc}", creds)) from None
                raise  # a bug: keep its traceback
            if not _transient(exc, code, idempotent):
                refused = _refusal(action, code, reason, said, competition, creds)
                raise UserError(_scrub(refused, creds)) from None
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


def _http_error(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status, Kaggle's message) behind `exc`, also when the client re-raised it as a ValueError;
    (None, "") when no answer came. Kaggle answers an error with JSON {"code", "message"}."""
    seen = 0
    while exc is not None and seen < 5:
        response = getattr(exc, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return int(response.status_code), _message(response)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None, ""


def _message(response: Any) -> str:
    """The first line of Kaggle's message in an error answer ("" when it has none)."""
    try:
        said = response.json().get("message") or ""
    except (AttributeError, ValueError, RuntimeError):  # not JSON, or not a dict
        return ""
    lines = str(said).strip().splitlines()
    return lines[0][:300] if lines else ""


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


def _refusal(action: str, code: int | None, reason: str, said: str, competition: str,
             creds: Credentials) -> str:
    """One line: what Kaggle refused, in its own words (`said`), and what to do about it."""
    if code is None or code >= 500:  # only a push or a submission gets here: repeating it could do it twice
        return (f"{action}: {reason} from Kaggle{f' ({said})' if said else ''}, so it may or may not have "
                "been done: check on kaggle.com before trying again")
    status = f"HTTP {code}: {said}" if said else f"HTTP {code}"
    if code == 401:
        return (f"{action}: Kaggle refused the credentials in {creds.found} ({status}): check them, or "
                f"create a new token ({TOKEN_HELP})")
    if code == 403:
        return (f"{action}: Kaggle refused access ({status}): accept the competition rules at "
                f"{RULES_URL.format(competition=competition)}, or check the kernel slug")
    if code == 404:
        return f"{action}: not found on Kaggle ({status}): check the competition name and the kernel slug"
    return f"{action}: Kaggle refused the request (HTTP {code}){f': {said}' if said else ''}"


def _scrub(message: str, creds: Credentials) -> str:
    for secret in creds.secrets:
        message = message.replace(secret, "***")
    return message


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


def push_kernel(folder: Path, retry: Retry | None, timeout_s: float) -> tuple[str, int, str]:
    """Push the kernel folder (kernel-metadata.json + notebook); returns (owner/slug, version, URL).
    `timeout_s`: the session's time limit, so that Kaggle stops a hung run there rather than after its own
    limit of many hours (the client sends it as session_timeout_seconds)."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    kernel_id = json.loads((Path(folder) / "kernel-metadata.json").read_text())["id"]
    push = functools.partial(api.kernels_push, str(folder), timeout=str(max(1, round(timeout_s))))
    resp = _call(f"push {kernel_id}", push, creds, retry, idempotent=False)
    if resp.error and SESSION_CAP.search(resp.error):
        raise SessionCapReached(_scrub(f"push {kernel_id}: {resp.error}", creds))
    if resp.error:
        raise UserError(_scrub(f"push {kernel_id}: Kaggle refused the kernel: {resp.error}", creds))
    unknown = [f"{label}: {', '.join(items)}" for label, items in (
        ("competition", resp.invalid_competition_sources), ("dataset", resp.invalid_dataset_sources),
        ("kernel", resp.invalid_kernel_sources), ("model", resp.invalid_model_sources)) if items]
    if unknown and resp.version_number:  # Kaggle runs the version without them: its preflight will stop it
        print(_scrub(f"push {kernel_id}: Kaggle does not know these sources and started version "
                     f"{resp.version_number} without them: {'; '.join(unknown)}; the notebook's preflight "
                     "stops it within a minute: fix the source in [kernel] settings and push again", creds),
              file=sys.stderr)
    elif unknown:
        raise UserError(_scrub(f"push {kernel_id}: Kaggle does not know these sources: {'; '.join(unknown)} "
                               "(fix the source in [kernel] settings and push again)", creds))
    if not resp.version_number:
        raise UserError(f"push {kernel_id}: Kaggle did not say which version it created; see {resp.url}")
    return _kernel_ref(resp.ref) or kernel_id, int(resp.version_number), resp.url


def _kernel_ref(ref: str) -> str:
    """owner/slug from Kaggle's ref ("/code/owner/slug" or "owner/slug"); "" when it has another shape."""
    parts = [p for p in (ref or "").split("/") if p]
    parts = parts[1:] if parts[:1] == ["code"] else parts
    return "/".join(parts) if len(parts) == 2 else ""


def kernel_status(ref: str, version: int, retry: Retry | None = None) -> tuple[KernelStatus, str]:
    """(status, failure message) of version `version` of the kernel: queued / running / complete / error /
    cancel_requested / cancel_acknowledged. Asked by version: right after a push, Kaggle may answer a question
    that names none with the previous version's session (KAGGLE.md, "Today's platform")."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    resp = _call(f"kernel status {ref} v{version}", lambda: api.kernels_status(f"{ref}/{version}"), creds,
                 retry)
    return KernelStatus.from_kaggle(resp.status), _scrub(resp.failure_message or "", creds)


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
               retry: Retry | None = None) -> Callable[[], Iterator[dict]]:
    """A reader of the log of kernel `ref` (that version, else the latest). Each call of the reader reads the
    log from its start as Kaggle's entries
    ({stream_name, time, data}): as they are written while the kernel runs, the whole log once it has ended.

    The session is opened here, in the calling thread: signing in is silenced by swapping sys.stdout, which
    must not happen in a background thread (it would swallow, or keep, another thread's output). The reader
    may then be called from any thread. Connecting is retried like every call here; a stream cut later
    raises KaggleUnavailable (Kaggle replays the log from its start, so a caller skips what it has seen).
    """
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
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


def kernel_output(ref: str, version: int, dest: Path, retry: Retry | None = None,
                  wanted: Callable[[str], bool] = lambda name: True) -> list[Path]:
    """Download the output files (those `wanted`) and the log (<slug>.log) of version `version` of the kernel
    into `dest` (asked by version, as kernel_status is).

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
        request.page_token, request.version_label = token, f"v{version}"
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
    reserved_h: float  # held by the sessions running now ("quota reserved by currently-running sessions")
    total_h: float
    refresh: datetime | None  # when the quota is reset (UTC)

    @property
    def left_h(self) -> float:
        """What a new session can still get: neither spent nor held by a running one."""
        return max(0.0, self.total_h - self.used_h - self.reserved_h)


def gpu_quota(retry: Retry | None = None) -> Quota:
    """The GPU quota (an answer without one reads as 0 hours: Kaggle grants no GPU to that account)."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    resp = _call("read the GPU quota", api.quota_view, creds, retry)
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

    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    limits = _call(f"read the submission limits of {name}",
                   functools.partial(api.competition_get_submission_limits, name), creds, retry,
                   competition=name)
    request = ApiGetCompetitionRequest()
    request.competition_name = name

    def get_competition() -> Any:
        with api.build_kaggle_client() as client:
            return client.competitions.competition_api_client.get_competition(request)

    joined = _call(f"read competition {name}", get_competition, creds, retry, competition=name)
    now = datetime.now(timezone.utc)
    midnight = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
    return SubmissionLimits(int(limits.num_allowed_now), int(limits.num_today),
                            int(joined.max_daily_submissions or 0), bool(joined.user_has_entered),
                            bool(limits.limited_by_total), midnight)


def competition_folders(name: str, retry: Retry | None = None) -> dict[str, int]:
    """The top folders of competition `name`'s data and how many files each holds (ListDataTreeFiles: one
    answer, where listing every file would take hundreds)."""
    from kagglesdk.competitions.types.competition_api_service import ApiListDataTreeFilesRequest

    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)

    def page(token: str) -> Any:
        request = ApiListDataTreeFilesRequest()
        request.competition_name, request.page_size, request.page_token = name, 100, token
        with api.build_kaggle_client() as client:
            return client.competitions.competition_api_client.list_data_tree_files(request)

    folders: dict[str, int] = {}
    for content in _pages(f"list the data of {name}", page, creds, retry, competition=name):
        folders.update({d.name: int(d.total_files or 0) for d in content.directories or []})
        folders.update({f.name: 1 for f in content.files or []})
    return folders


def dataset_files(ref: str, retry: Retry | None = None) -> list[str] | None:
    """The file names of dataset `ref` (owner/slug), or None where this user cannot see it (Kaggle answers
    403 or 404 for a dataset that does not exist and for someone else's private one)."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)

    def page(token: str) -> Any:
        try:
            return api.dataset_list_files(ref, token, 100)
        except requests.exceptions.HTTPError as exc:
            if _http_error(exc)[0] in (403, 404):
                return None
            raise

    names: list[str] = []
    for listing in _pages(f"list the files of dataset {ref}", page, creds, retry):
        if listing is None:
            return None
        if listing.error_message:
            raise UserError(_scrub(f"list the files of dataset {ref}: {listing.error_message}", creds))
        names += [f.name for f in listing.dataset_files or []]
    return names


DATASET_METADATA = "dataset-metadata.json"  # the client reads a dataset's id, title and license from it


@dataclass(frozen=True)
class DatasetState:
    """Where one of your datasets stands on Kaggle."""

    status: str  # Kaggle's word in lower case: "ready" once its latest version's files are in place, "failed"
    version: int  # the latest version's number

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def dataset_state(ref: str, retry: Retry | None = None) -> DatasetState | None:
    """The status and latest version of dataset `ref` (owner/slug); None where this user cannot see it."""
    retry, creds = retry or RETRY, credentials()
    return _dataset_state(_session(creds, retry), ref, creds, retry)


def _dataset_state(api: Any, ref: str, creds: Credentials, retry: Retry) -> DatasetState | None:
    def read() -> dict | None:
        try:  # GetDatasetStatus, then GetDataset for the version
            return json.loads(api.dataset_status(ref, format="json"))
        except requests.exceptions.HTTPError as exc:
            if _http_error(exc)[0] in (403, 404):  # not there, or someone else's private dataset
                return None
            raise

    found = _call(f"read the status of dataset {ref}", read, creds, retry)
    if found is None:
        return None
    return DatasetState(str(found.get("status") or ""), int(found.get("current_version_number") or 0))


def upload_dataset(folder: Path, notes: str, retry: Retry | None = None) -> tuple[int, str]:
    """Put the files of `folder` on Kaggle as a private dataset: a new one, or a new version (with `notes`)
    where the dataset its dataset-metadata.json names (id, title, license) exists. Returns (the version before
    this upload, 0 for a new dataset; the dataset's URL): Kaggle goes on processing the files after answering,
    so the caller waits for a later version to be ready (dataset_state).

    Only the folder's top-level files travel (a sub-folder would go as an archive the notebook would have to
    unpack). The client uploads each file with its own retries; the request that creates the dataset or
    version is not repeated here after an answer (it could make two)."""
    retry, creds = retry or RETRY, credentials()
    api = _session(creds, retry)
    ref = json.loads((Path(folder) / DATASET_METADATA).read_text())["id"]
    before = _dataset_state(api, ref, creds, retry)
    if before is None:
        action = f"create dataset {ref}"
        create = functools.partial(api.dataset_create_new, str(folder), public=False, quiet=False)
    else:
        action = f"add a version to dataset {ref}"
        create = functools.partial(api.dataset_create_version, str(folder), notes, quiet=False)
    resp = _call(action, create, creds, retry, idempotent=False)
    if (resp.status or "").lower() != "ok":
        said = resp.error or resp.status or "no reason given"
        raise UserError(_scrub(f"{action}: Kaggle refused it: {said}", creds))
    return (before.version if before else 0), resp.url or f"https://www.kaggle.com/datasets/{ref}"


LISTING_PAGES = 20  # pages of 100 entries: far more than a competition's or a dataset's top level holds


def _pages(action: str, page: Callable[[str], Any], creds: Credentials, retry: Retry,
           **options: Any) -> Iterator[Any]:
    """Each answer of a listing Kaggle gives in pages (`page(token)`, "" for the first), up to LISTING_PAGES;
    an answer of None (nothing to list) ends it."""
    token = ""
    for _ in range(LISTING_PAGES):
        answer = _call(action, functools.partial(page, token), creds, retry, **options)
        yield answer
        token = answer.next_page_token if answer is not None else ""
        if not token:
            return


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

