"""A local fake Kaggle that the real `kaggle` client (2.2.5, kagglesdk 0.1.38) talks to over HTTP, held to the
SDK's own messages, so that a test passing here passes against the request and answer shapes Kaggle has.

Wire: the client POSTs JSON to /api/v1/{service}/{Method} with HTTP basic auth and gets JSON answers with
camelCase fields; file downloads are a redirect (or a signed URL) to a plain GET. The client is pointed at it
as KAGGLE.md says for a non-root user on any port: KAGGLE_API_ENVIRONMENT=LOCALHOST sends requests to
http://localhost/api/v1/..., and http_proxy makes this server the "proxy" that receives them (it accepts
absolute-URL request targets). https_proxy points at a dead port so nothing can reach the real Kaggle. The
same environment works in-process and for a `python -m pipeline submit` subprocess.

Held to the SDK: `sdk_methods()` reads (service, Method) -> (request message, response message) from kagglesdk
itself (each `*/services/*_service.py` client is called once with a recorder in place of its HTTP client). A
request body with a field the request message lacks (its `_fields` JSON names, nested messages too) or a value
the SDK's setters refuse is answered HTTP 400, so a misspelled field fails the test that sends it. A
handler `_Method(self, request)` gets the parsed request message and returns the response message, built
with `sdk_message` (a field the SDK lacks raises) and sent as the SDK serialises it (`wire`): statuses as
the enum's names (QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_REQUESTED, CANCEL_ACKNOWLEDGED). An HttpRedirect
answer is a 302; `Refused(code, message)` is Kaggle's {"code", "message"} error JSON. Adding a method is
one such handler.

Kaggle's rules, kept here:
- Versions count per kernel. A refused push creates no version: a notebook over 1 MB (HTTP 400 with Kaggle's
  text), a title over 50 characters, the session cap and `push_error` (each HTTP 200 with the answer's error).
  An unknown source (a competition other than `competition`, a dataset not in `dataset_files` or
  execute_with's, a kernel never pushed) is listed in invalid*Sources and the version runs without it.
  `pushes` lists the accepted pushes' bodies, `push_attempts` every SaveKernel body.
- A new kernel is named after its title (python-slugify, the client's own check): the id's slug is kept only
  for a kernel that exists already, or a push without a title.
- Stale sessions: after a push, the first `stale_polls` GetKernelSessionStatus and the first
  ListKernelSessionOutput calls that name no version answer with the previous version's session (status,
  files, log). versionLabel "v<N>" names version N; a bare "<N>" or a version that does not exist is a 404.
- ListKernelSessionOutput pages: pageSize files (20 when not given), then nextPageToken for the rest.
- CreateCodeSubmission checks the competition (404) and its rules (403), then answers HTTP 400 with a message
  unless that kernel version exists, is COMPLETE, lists the file among its outputs, was pushed with internet
  off, and today's submissions are fewer than `submissions_per_day` (what GetSubmissionLimits answers).
- GetAcceleratorQuotaStatistics answers `quota` (hours used, total, refresh time) and timeReserved: each GPU
  session (enableGpu) still queued or running reserves its sessionTimeoutSeconds, or `session_limit_s` when
  the push gave none.
- Signing in: HTTP basic auth with `username` and `key`, or an access token in `tokens` as kagglesdk sends it
  (Bearer; IntrospectToken answers the token's user). Until `rules_accepted`, GetCompetition's userHasEntered
  is false and GetSubmissionLimits is all zero. ListDataTreeFiles lists `data_folders`; ListDatasetFiles
  lists `dataset_files` and answers 404 for any other dataset (not there, or not yours to see).
- `cancel(ref, version)` stops a running version as its page's "Cancel run" does: CANCEL_REQUESTED at the next
  status call, CANCEL_ACKNOWLEDGED after it (executing mode: once the notebook has stopped).
- Datasets uploaded through the client: StartBlobUpload answers a createUrl on this server that takes the
  file in one PUT (`PUT /upload/<token>`); CreateDataset (its owner the user, its slug not taken) and
  CreateDatasetVersion (of a dataset there) take the tokens of completely uploaded blobs and make the next
  version of those files.
  GetDatasetStatus answers BLOBS_RECEIVED for the first `dataset_processing_polls` calls after an upload,
  then READY; GetDataset says its current version. An uploaded dataset's latest version is listed by
  ListDatasetFiles (`dataset_files`) and, in executing mode, attached like execute_with's datasets.

Scripted mode (the default): each version's status follows `statuses` as that version is polled (the
last one repeats); version N lists `outputs_by_version[N]`, else `output_files`, and `log`. `push_error`
makes SaveKernel answer HTTP 200 with that validation error, `refuse_pushes` refuses the next pushes for
the session cap, `fail(method, *codes)` answers the next calls of a method with those HTTP codes (0 = drop
the connection) before serving it ("files" for downloads, "logs" for the log stream). ListSubmissions
lists what CreateCodeSubmission accepted, newest first: each is PENDING for its first `pending_lists`
listings, then COMPLETE with `public_score` (or ERROR with `submission_error`).

Executing mode (`execute_with(competition_dir, datasets)`): Kaggle runs what it is sent. SaveKernel lays
out a fresh `<tmp>/kaggle-runs/<slug>/<version>/` in today's layout (`input/competitions/<competition>/` and
`input/datasets/<owner>/<slug>/` copied from the given folders, for the sources the push names;
`input/notebooks/<owner>/<slug>/` for each kernel in its kernel_sources, from that kernel's latest completed
output; an empty `working/`) and runs the pushed notebook there in the Kaggle-like Python
(tests/kaggle_image.py) in a background thread. The status is QUEUED, then RUNNING while it runs, then
COMPLETE or ERROR (with a failureMessage) from what really happened; the output is the real files under that
run's `working/` and its real log. At most `max_sessions` run at once: a push beyond them is answered as
Kaggle answers one beyond the GPU session cap (the tests' kernels run on the CPU, so every running session
counts), and `session_log` records how many ran at every start and end.

The log stream (`GET /api/v1/kernels/logs/stream/{owner}/{slug}`, what `kaggle kernels logs --follow`
reads) answers as Kaggle's does: while the notebook runs, server-sent events (`data: {json}` per log
entry as it appears, then `data: END_OF_LOG`), chunked so that a cut is seen as one; once it has
ended (and in scripted mode), the whole log as a JSON blob. `cut_log_stream` cuts the next streams
after that many events each, as a load balancer does with idle connections.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import importlib
import inspect
import io
import json
import os
import re
import secrets
import shutil
import threading
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import kagglesdk
import pytest
from kaggle_image import NotebookRun, kaggle_python, run_kaggle_notebook
from kagglesdk.blobs.types.blob_api_service import ApiStartBlobUploadRequest, ApiStartBlobUploadResponse
from kagglesdk.common.types.http_redirect import HttpRedirect
from kagglesdk.competitions.types.competition_api_service import (
    ApiCompetition,
    ApiCreateCodeSubmissionRequest,
    ApiCreateCodeSubmissionResponse,
    ApiDownloadDataFilesRequest,
    ApiGetCompetitionRequest,
    ApiGetSubmissionLimitsRequest,
    ApiListDataTreeFilesRequest,
    ApiListSubmissionsRequest,
    ApiListSubmissionsResponse,
    ApiSubmission,
    ApiSubmissionLimits,
)
from kagglesdk.competitions.types.submission_status import SubmissionStatus
from kagglesdk.datasets.databundles.types.databundle_api_types import ApiDirectory, ApiDirectoryContent
from kagglesdk.datasets.types.dataset_api_service import (
    ApiCreateDatasetRequest,
    ApiCreateDatasetResponse,
    ApiCreateDatasetVersionRequest,
    ApiDataset,
    ApiDatasetFile,
    ApiDatasetNewFile,
    ApiGetDatasetRequest,
    ApiGetDatasetStatusRequest,
    ApiGetDatasetStatusResponse,
    ApiListDatasetFilesRequest,
    ApiListDatasetFilesResponse,
)
from kagglesdk.datasets.types.dataset_enums import DatabundleVersionStatus
from kagglesdk.kaggle_object import KaggleObject, MapSerializer
from kagglesdk.kernels.types.kernels_api_service import (
    ApiAcceleratorQuota,
    ApiGetAcceleratorQuotaStatisticsRequest,
    ApiGetAcceleratorQuotaStatisticsResponse,
    ApiGetKernelRequest,
    ApiGetKernelResponse,
    ApiGetKernelSessionStatusRequest,
    ApiGetKernelSessionStatusResponse,
    ApiKernelMetadata,
    ApiKernelSessionOutputFile,
    ApiListKernelSessionOutputRequest,
    ApiListKernelSessionOutputResponse,
    ApiSaveKernelRequest,
    ApiSaveKernelResponse,
)
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus
from kagglesdk.security.types.oauth_service import IntrospectTokenRequest, IntrospectTokenResponse
from slugify import slugify

HOST = "http://localhost"  # what the client believes it talks to (KaggleEnv.LOCAL)
LOG_STREAM = "/api/v1/kernels/logs/stream/"
END_OF_LOG = "END_OF_LOG"
# Kaggle refuses a notebook over this with HTTP 400 and this text (kaggle-cli issues quote it); "1 megabytes"
# is read strictly as 10^6 bytes of the JSON sent, so a notebook near the limit fails here before on Kaggle.
NOTEBOOK_LIMIT, NOTEBOOK_TOO_BIG = 1_000_000, "The kernel source must be less than 1 megabytes"
TITLE_LIMIT = 50  # characters of a kernel title (kaggle-cli PR 179: Kaggle refused longer ones, with a 500)
OUTPUT_PAGE = 20  # files per ListKernelSessionOutput page when the request gives no pageSize
STALE = ("GetKernelSessionStatus", "ListKernelSessionOutput")  # may answer the previous version after a push
RUNNING = (KernelWorkerStatus.QUEUED, KernelWorkerStatus.RUNNING, KernelWorkerStatus.CANCEL_REQUESTED)

M = TypeVar("M", bound=KaggleObject)


# -- the SDK's messages -------------------------------------------------------------------------------------
class Refused(Exception):
    """An error answer: HTTP `code` with Kaggle's {"code", "message"} JSON."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Recorder:
    """Stands in for kagglesdk's HTTP client: keeps what a service client's method would send."""

    seen: tuple[str, str, type, Any] = ("", "", object, None)

    def call(self, service: str, method: str, request: KaggleObject, response_type: Any) -> None:
        self.seen = (service, method, type(request), response_type)


@functools.cache
def sdk_methods() -> dict[tuple[str, str], tuple[type[KaggleObject], Any]]:
    """(service, Method) -> (request message class, response message class or None) of every call kagglesdk
    makes, read from the SDK itself rather than written here: each service client's public methods are called
    once, with an empty request, on a recorder in place of the HTTP client."""
    recorder, found = _Recorder(), {}
    for path in sorted(Path(kagglesdk.__file__).parent.glob("*/services/*_service.py")):
        module = importlib.import_module(f"kagglesdk.{path.parts[-3]}.services.{path.stem}")
        for _, client_type in inspect.getmembers(module, inspect.isclass):
            if client_type.__module__ != module.__name__:
                continue
            client = client_type(recorder)
            for name, _ in inspect.getmembers(client_type, inspect.isfunction):
                if not name.startswith("_"):
                    getattr(client, name)()
                    service, method, request_type, response_type = recorder.seen
                    found[(service, method)] = (request_type, response_type)
    return found


def sdk_message(message_type: type[M], **fields: Any) -> M:
    """A `message_type` with these fields (snake_case): a name the SDK's message lacks raises AttributeError
    and a value of the wrong type TypeError, from the SDK's own setters."""
    message = message_type()
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def wire(message: KaggleObject) -> dict:
    """The JSON object of `message` as the SDK writes it (`to_dict`: camelCase, defaults left out, enums by
    name), except durations: the SDK's TimeDeltaSerializer writes `timedelta.seconds`, which drops whole days
    (30 h would travel as "21600s"), where Kaggle sends the total ("108000s")."""
    out = message.to_dict()
    for f in message._fields:
        value = getattr(message, f.private_field_name)
        if f.json_name not in out:
            continue
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
            out[f.json_name] = f"{seconds:.0f}s" if seconds == int(seconds) else f"{seconds:.3f}s"
        elif isinstance(value, KaggleObject):
            out[f.json_name] = wire(value)
        elif isinstance(value, list) and value and isinstance(value[0], KaggleObject):
            out[f.json_name] = [wire(item) for item in value]
    return out


def unknown_fields(message_type: type[KaggleObject], data: dict, where: str = "") -> list[str]:
    """The JSON names in `data` (and in the nested messages it holds) that `message_type` has no field for."""
    fields = {f.json_name: f for f in message_type._fields}
    found = [f"{where}{name}" for name in data if name not in fields]
    for name, value in data.items():
        f = fields.get(name)
        if f is None or not (isinstance(f.field_type, type) and issubclass(f.field_type, KaggleObject)):
            continue
        items = (value.values() if isinstance(f.serializer, MapSerializer) and isinstance(value, dict)
                 else value if isinstance(value, list) else [value])
        for i, item in enumerate(items):
            if isinstance(item, dict):
                found += unknown_fields(f.field_type, item, f"{where}{name}[{i}]." if isinstance(value, list)
                                        else f"{where}{name}.")
    return found


def parse_request(message_type: type[M], body: Any) -> M:
    """The request message of a JSON body, or Refused(400) for a field the SDK's message lacks or a value its
    setters refuse (worded as a protobuf JSON parser words it)."""
    name = message_type.__name__
    if not isinstance(body, dict):
        raise Refused(400, f"Invalid JSON payload received. {name} must be a JSON object")
    unknown = unknown_fields(message_type, body)
    if unknown:
        raise Refused(400, f"Invalid JSON payload received. Unknown name {unknown[0]!r} at {name!r}: "
                           "Cannot find field.")
    try:
        message = message_type.from_dict(body)
        probe = message_type()  # the setters check each value's type; from_dict does not
        for f in message_type._fields:
            setattr(probe, f.field_name, getattr(message, f.private_field_name))
    except (TypeError, ValueError, KeyError) as exc:
        raise Refused(400, f"Invalid JSON payload received. {name}: {exc}") from None
    return message


# -- the fake -----------------------------------------------------------------------------------------------
@dataclass
class KaggleRun:
    """One notebook run of the executing fake: its folder (input/, working/), growing log and outcome."""
    version: int
    folder: Path
    log: list[dict] = field(default_factory=list)  # Kaggle's format, appended to while the notebook runs
    result: NotebookRun | None = None
    failure: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    status_calls: int = 0

    @property
    def working(self) -> Path:
        return self.folder / "working"

    def status(self, poll: bool = True) -> tuple[KernelWorkerStatus, str]:
        """(status, failure message) now; the first status call after the push still sees it QUEUED."""
        self.status_calls += poll
        if not self.done.is_set():
            return (KernelWorkerStatus.QUEUED if self.status_calls <= 1 else KernelWorkerStatus.RUNNING), ""
        if self.result is not None and self.result.ok:
            return KernelWorkerStatus.COMPLETE, ""
        return KernelWorkerStatus.ERROR, self.failure


@dataclass
class Version:
    """A version Kaggle accepted: its push as sent and, in scripted mode, how far its session has got."""
    ref: str
    number: int
    body: dict  # the SaveKernel request's JSON
    polls: int = 0  # scripted: status calls answered, the place in `statuses`
    cancel_polls: int | None = None  # status calls answered since cancel(); None: not cancelled


@dataclass
class Blob:
    """A file the client started uploading (StartBlobUpload): its name, announced size and what arrived."""
    name: str
    length: int
    data: bytes | None = None


@dataclass
class Execution:
    competition_dir: Path
    datasets: dict[str, Path]
    runs_dir: Path
    timeout: float


@dataclass
class FakeKaggle:
    username: str = "tester"
    key: str = field(default_factory=lambda: "k" + secrets.token_hex(16))
    competition: str = "gan-getting-started"
    competition_zip: bytes = b""
    rules_accepted: bool = True
    push_error: str = ""
    statuses: list[tuple[str, str]] = field(default_factory=lambda: [("running", ""), ("complete", "")])
    output_files: dict[str, bytes] = field(default_factory=dict)
    outputs_by_version: dict[int, dict[str, bytes]] = field(default_factory=dict)  # version N -> its files
    outputs_by_kernel: dict[str, dict[str, bytes]] = field(default_factory=dict)  # owner/slug -> its files
    scripted_running: list[int] = field(default_factory=list)  # scripted mode: sessions running at each push
    log: list[dict] = field(default_factory=list)  # Kaggle's log format: [{stream_name, time, data}]
    stale_polls: int = 2  # unversioned status / output calls after a push that answer the previous version
    cut_log_stream: list[int] = field(default_factory=list)  # cut the next log streams after N events each
    public_score: str = "41.2345"  # every submission's public MiFID once "scored"
    submission_error: str = ""  # instead: every submission ends in ERROR with this description
    pending_lists: int = 1  # listings of a new submission that show it PENDING before it is scored
    execution: Execution | None = None  # set by execute_with: Kaggle runs what it is sent
    runs: dict[tuple[str, int], KaggleRun] = field(default_factory=dict)  # (owner/slug, version) -> its run
    max_sessions: int = 2  # sessions running at once (executing mode); Kaggle's GPU cap
    refuse_pushes: int = 0  # scripted mode: refuse the next N pushes for the session cap
    session_log: list[tuple[str, str, int]] = field(default_factory=list)  # (event, owner/slug vN, running)
    quota: tuple[float, float, str] | None = (10.0, 30.0, "2026-12-06T00:00:00Z")  # used h, total h, refresh
    session_limit_s: int = 12 * 3600  # what a GPU session reserves when its push gave no session timeout
    submissions_per_day: int = 5
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> its user (IntrospectToken, Bearer)
    # the competition's top folders and how many files each holds (ListDataTreeFiles), as on Kaggle
    data_folders: dict[str, int] = field(default_factory=lambda: {"monet_jpg": 300, "monet_tfrec": 5,
                                                                 "photo_jpg": 7038, "photo_tfrec": 20})
    dataset_files: dict[str, list[str]] = field(default_factory=dict)  # owner/slug -> its files' names
    dataset_processing_polls: int = 1  # GetDatasetStatus calls after an upload that see it still processing
    workdir: Path | None = None  # where runs are laid out (serving() sets the test's tmp_path)
    # What the server saw
    calls: list[str] = field(default_factory=list)
    push_attempts: list[dict] = field(default_factory=list)  # every SaveKernel body, refused or not
    pushes: list[dict] = field(default_factory=list)  # the bodies of the pushes that became versions
    submissions: list[dict] = field(default_factory=list)
    kernels: dict[str, list[Version]] = field(default_factory=dict)  # owner/slug -> versions, oldest first
    # uploaded datasets: owner/slug -> the bodies of its CreateDataset and CreateDatasetVersion requests (its
    # versions, oldest first), and the folder of its latest version's files
    datasets: dict[str, list[dict]] = field(default_factory=dict)
    uploads: dict[str, Path] = field(default_factory=dict)
    port: int = 0
    _faults: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _files: dict[str, bytes] = field(default_factory=dict)
    _stale: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # stale calls left
    _listed: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # submission -> times listed
    _blobs: dict[str, Blob] = field(default_factory=dict)  # upload token -> the blob started with it
    _processing: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # dataset -> polls left
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pushed: threading.Condition = field(default_factory=threading.Condition)  # notified at every push

    def fail(self, method: str, *codes: int) -> None:
        """Answer the next len(codes) calls of `method` (e.g. "GetKernelSessionStatus", or "files" for
        file downloads) with these HTTP codes; 0 drops the connection without an answer."""
        self._faults[method].extend(codes)

    def log_lines(self, *lines: str) -> None:
        self.log = [{"stream_name": "stdout", "time": float(i), "data": line + "\n"}
                    for i, line in enumerate(lines)]

    def execute_with(self, competition_dir: Path, datasets: dict[str, Path] | None = None,
                     timeout: float = 600.0) -> None:
        """Executing mode: every push runs the notebook (see the module docstring) with the competition's
        data from `competition_dir` and the datasets {"owner/slug": folder} it may attach; `timeout`
        (s) is the session's limit. Builds the Kaggle-like Python now, so a failure to build fails here."""
        kaggle_python()
        runs_dir = (self.workdir or Path.cwd()) / "kaggle-runs"
        self.execution = Execution(Path(competition_dir), {k: Path(v) for k, v in (datasets or {}).items()},
                                   runs_dir, timeout)

    def wait_for_pushes(self, n: int, timeout: float) -> bool:
        """Wait until `n` pushes were accepted (woken by each one, never polling); False after `timeout`."""
        with self._pushed:
            return self._pushed.wait_for(lambda: len(self.pushes) >= n, timeout)

    def wait_for_runs(self, timeout: float = 60.0, stop: bool = False) -> None:
        """Wait for the runs still going (`stop` cancels them first): a test leaves no kernel behind."""
        for run in list(self.runs.values()):
            if stop:
                run.stop.set()
            run.done.wait(timeout)

    def cancel(self, ref: str, version: int) -> None:
        """Cancel a version that is queued or running, as the notebook page's "Cancel run" does: the next
        status call answers CANCEL_REQUESTED, later ones CANCEL_ACKNOWLEDGED (executing mode: once the run has
        stopped)."""
        with self._lock:
            v = self.kernels[ref][version - 1]
            if self.session_status(v, poll=False)[0] not in RUNNING:
                raise ValueError(f"{ref} version {version} is not running: nothing to cancel")
            v.cancel_polls = 0
            run = self.runs.get((ref, version))
            if run is not None:
                run.stop.set()

    def versions(self, ref: str) -> int:
        """How many versions of the kernel `ref` Kaggle accepted (its latest version's number)."""
        return len(self.kernels.get(ref, []))

    def latest_run(self, ref: str) -> KaggleRun | None:
        return self.runs.get((ref, self.versions(ref))) if self.execution is not None else None

    @property
    def most_running(self) -> int:
        """The most sessions that ever ran at once (the fake's own log)."""
        return max((n for _, _, n in self.session_log), default=0)

    def session_status(self, v: Version, poll: bool) -> tuple[KernelWorkerStatus, str]:
        """(status, failure message) of version v's session; `poll`: a client asked, which moves a scripted
        session along `statuses` (without it: the status the last call saw, or will see first)."""
        run = self.runs.get((v.ref, v.number))
        if v.cancel_polls is not None:
            stopped = run.done.is_set() if run is not None else v.cancel_polls > 0
            v.cancel_polls += poll
            return (KernelWorkerStatus.CANCEL_ACKNOWLEDGED if stopped
                    else KernelWorkerStatus.CANCEL_REQUESTED), ""
        if run is not None:
            return run.status(poll)
        place = v.polls if poll else max(v.polls - 1, 0)
        v.polls += poll
        name, message = self.statuses[min(place, len(self.statuses) - 1)]
        return KernelWorkerStatus[name.upper()], message

    def outputs(self, v: Version) -> tuple[dict[str, bytes], list[dict]]:
        """(files by name, log) of version v's session."""
        run = self.runs.get((v.ref, v.number))
        if run is not None:  # what the notebook really left in /kaggle/working, and its real log
            return ({p.relative_to(run.working).as_posix(): p.read_bytes()
                     for p in sorted(run.working.rglob("*")) if p.is_file()}, list(run.log))
        if v.ref in self.outputs_by_kernel:
            return self.outputs_by_kernel[v.ref], self.log
        return self.outputs_by_version.get(v.number, self.output_files), self.log

    def reserved(self) -> timedelta:
        """GPU time held by the sessions queued or running now: each its session timeout, else the limit."""
        return timedelta(seconds=sum(
            v.body.get("sessionTimeoutSeconds") or self.session_limit_s
            for versions in self.kernels.values() for v in versions
            if v.body.get("enableGpu") and self.session_status(v, poll=False)[0] in RUNNING))

    # -- the service: one handler per SDK method, `_Method(request) -> response` ----------------------------
    def handle(self, service: str, method: str, body: Any, authorized: bool) -> tuple[int, dict, str]:
        """(HTTP status, JSON body, redirect location) for one API call."""
        if not authorized:
            return 401, {"code": 401, "message": "Unauthenticated"}, ""
        types = sdk_methods().get((service, method))
        handler = getattr(self, f"_{method}", None)
        if types is None or handler is None:
            return 404, {"code": 404, "message": f"unknown method {service}/{method}"}, ""
        request_type, response_type = types
        try:
            answer = handler(parse_request(request_type, body))
        except Refused as refused:
            return refused.code, {"code": refused.code, "message": str(refused)}, ""
        if response_type is None and answer is None:
            return 200, {}, ""
        if response_type is None or not isinstance(answer, response_type):  # the fake's own bug
            raise TypeError(f"_{method} answered {type(answer).__name__}, not the SDK's {response_type}")
        if isinstance(answer, HttpRedirect):
            return 302, {}, answer.url
        return 200, wire(answer), ""

    def authorized(self, header: str | None) -> bool:
        """HTTP basic auth with username and key, or an access token as kagglesdk sends it (Bearer)."""
        basic = "Basic " + base64.b64encode(f"{self.username}:{self.key}".encode()).decode()
        return header == basic or any(header == f"Bearer {token}" for token in self.tokens)

    def _IntrospectToken(self, request: IntrospectTokenRequest) -> IntrospectTokenResponse:
        user = self.tokens.get(request.token)
        return sdk_message(IntrospectTokenResponse, active=bool(user), username=user or None)

    def _GetCompetition(self, request: ApiGetCompetitionRequest) -> ApiCompetition:
        if request.competition_name != self.competition:
            raise Refused(404, "Competition not found")
        return sdk_message(ApiCompetition, ref=self.competition, title="I'm Something of a Painter Myself",
                           user_has_entered=self.rules_accepted,
                           max_daily_submissions=self.submissions_per_day, is_kernels_submissions_only=True)

    def _ListDataTreeFiles(self, request: ApiListDataTreeFilesRequest) -> ApiDirectoryContent:
        if request.competition_name != self.competition:
            raise Refused(404, "Competition not found")
        folders = [sdk_message(ApiDirectory, name=name, total_files=n, total_children=n)
                   for name, n in self.data_folders.items()]
        return sdk_message(ApiDirectoryContent, directories=folders, total_directories=len(folders),
                           total_children=len(folders))

    def _ListDatasetFiles(self, request: ApiListDatasetFilesRequest) -> ApiListDatasetFilesResponse:
        names = self.dataset_files.get(f"{request.owner_slug}/{request.dataset_slug}")
        if names is None:  # Kaggle's answer for a dataset that is not there or not yours to see
            raise Refused(404, "Dataset not found")
        files = [sdk_message(ApiDatasetFile, name=name, total_bytes=1) for name in names]
        return sdk_message(ApiListDatasetFilesResponse, dataset_files=files)

    def _StartBlobUpload(self, request: ApiStartBlobUploadRequest) -> ApiStartBlobUploadResponse:
        token = secrets.token_hex(8)
        self._blobs[token] = Blob(request.name, request.content_length)
        return sdk_message(ApiStartBlobUploadResponse, token=token, create_url=f"{HOST}/upload/{token}")

    def receive_blob(self, token: str, data: bytes) -> bool:
        """The PUT to a createUrl: the blob's content (False for a token never handed out)."""
        with self._lock:
            blob = self._blobs.get(token)
            if blob is not None:
                blob.data = data
            return blob is not None

    def _CreateDataset(self, request: ApiCreateDatasetRequest) -> ApiCreateDatasetResponse:
        if request.owner_slug != self.username:
            raise Refused(403, "Permission 'datasets.create' was denied")
        ref = f"{request.owner_slug}/{request.slug}"
        if ref in self.datasets:
            return sdk_message(ApiCreateDatasetResponse, status="error",
                               error=f'The requested slug "{request.slug}" is already in use by a dataset.')
        return self._new_dataset_version(ref, request.files, request.to_dict())

    def _CreateDatasetVersion(self, request: ApiCreateDatasetVersionRequest) -> ApiCreateDatasetResponse:
        ref = f"{request.owner_slug}/{request.dataset_slug}"
        if ref not in self.datasets:
            raise Refused(404, "Dataset not found")
        if request.owner_slug != self.username:
            raise Refused(403, "Permission 'datasets.update' was denied")
        return self._new_dataset_version(ref, request.body.files, request.to_dict())

    def _new_dataset_version(self, ref: str, files: list[ApiDatasetNewFile], body: dict
                             ) -> ApiCreateDatasetResponse:
        """The dataset's next version from the uploaded blobs: its files, listed and attachable."""
        blobs = [self._blobs.pop(f.token, None) for f in files]
        if not blobs or any(b is None or b.data is None or len(b.data) != b.length for b in blobs):
            raise Refused(400, "Invalid upload: a file's token is unknown or its upload is incomplete")
        version = len(self.datasets.get(ref, [])) + 1
        folder = (self.workdir or Path.cwd()) / "kaggle-datasets" / ref / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        for blob in blobs:
            (folder / blob.name).write_bytes(blob.data)
        self.datasets.setdefault(ref, []).append(body)
        self.uploads[ref] = folder
        self.dataset_files[ref] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                         if p.is_file())
        self._processing[ref] = self.dataset_processing_polls
        return sdk_message(ApiCreateDatasetResponse, ref=ref, url=f"{HOST}/datasets/{ref}", status="ok")

    def _GetDatasetStatus(self, request: ApiGetDatasetStatusRequest) -> ApiGetDatasetStatusResponse:
        ref = f"{request.owner_slug}/{request.dataset_slug}"
        if ref not in self.datasets:
            raise Refused(404, "Dataset not found")
        processing, self._processing[ref] = self._processing[ref] > 0, max(0, self._processing[ref] - 1)
        return sdk_message(ApiGetDatasetStatusResponse, status=DatabundleVersionStatus.BLOBS_RECEIVED
                           if processing else DatabundleVersionStatus.READY)

    def _GetDataset(self, request: ApiGetDatasetRequest) -> ApiDataset:
        ref = f"{request.owner_slug}/{request.dataset_slug}"
        if ref not in self.datasets:
            raise Refused(404, "Dataset not found")
        first = self.datasets[ref][0]
        return sdk_message(ApiDataset, ref=ref, title=first.get("title", ""), url=f"{HOST}/datasets/{ref}",
                           is_private=bool(first.get("isPrivate")),
                           current_version_number=len(self.datasets[ref]))

    def _open_competition(self, name: str) -> None:
        if name != self.competition:
            raise Refused(404, "Competition not found")
        if not self.rules_accepted:
            raise Refused(403, "You must accept this competition's rules")

    def _DownloadDataFiles(self, request: ApiDownloadDataFilesRequest) -> HttpRedirect:
        self._open_competition(request.competition_name)
        return sdk_message(HttpRedirect, url=self._serve(f"{self.competition}.zip", self.competition_zip))

    def _SaveKernel(self, request: ApiSaveKernelRequest) -> ApiSaveKernelResponse:
        body = request.to_dict()
        self.push_attempts.append(body)
        owner, _, slug = (request.slug or "").partition("/")
        if owner != self.username:
            raise Refused(403, "Permission 'kernels.create' was denied")
        if len((request.text or "").encode()) > NOTEBOOK_LIMIT:
            raise Refused(400, NOTEBOOK_TOO_BIG)  # HTTP 400 as kaggle-cli issues show, not the answer's error
        title = request.new_title or ""
        if len(title) > TITLE_LIMIT:  # a validation problem: HTTP 200 with the error, as SaveKernel says them
            return sdk_message(ApiSaveKernelResponse, error=f"The kernel title must be at most {TITLE_LIMIT} "
                                                            f"characters long (it has {len(title)})")
        ref = f"{owner}/{slug}"
        if ref not in self.kernels and title:  # a new kernel is named after its title
            ref = f"{owner}/{slugify(title)}"
        # Kaggle lists the sources it does not know and runs the version without them (the official CLI says
        # they "could not be added to the kernel", then "version N successfully pushed")
        datasets = {*self.dataset_files, *(self.execution.datasets if self.execution else ())}
        invalid = {"invalid_competition_sources": [c for c in request.competition_data_sources
                                                   if c != self.competition],
                   "invalid_dataset_sources": [d for d in request.dataset_data_sources if d not in datasets],
                   "invalid_kernel_sources": [k for k in request.kernel_data_sources
                                              if k not in self.kernels]}
        for key, field_name in (("competitionDataSources", "invalid_competition_sources"),
                                ("datasetDataSources", "invalid_dataset_sources"),
                                ("kernelDataSources", "invalid_kernel_sources")):
            if key in body:
                body[key] = [source for source in body[key] if source not in invalid[field_name]]
        running = sum(not run.done.is_set() for run in self.runs.values())
        if self.refuse_pushes or self.execution is not None and running >= self.max_sessions:
            self.refuse_pushes = max(0, self.refuse_pushes - 1)
            self.session_log.append(("refused", ref, running))
            return sdk_message(ApiSaveKernelResponse,
                               error=f"Maximum batch GPU session count of {self.max_sessions} reached")
        if self.push_error:
            return sdk_message(ApiSaveKernelResponse, error=self.push_error)
        version = self.versions(ref) + 1
        if self.execution is None:
            self.scripted_running.append(1 + sum(self.session_status(v, poll=False)[0] in RUNNING
                                                 for versions in self.kernels.values() for v in versions))
        self.kernels.setdefault(ref, []).append(Version(ref, version, body))
        self.pushes.append(body)
        with self._pushed:
            self._pushed.notify_all()
        for method in STALE:
            self._stale[(ref, method)] = self.stale_polls
        if self.execution is not None:
            self._start_run(ref, version, body)
        return sdk_message(ApiSaveKernelResponse, ref=f"/code/{ref}", url=f"{HOST}/code/{ref}",
                           version_number=version, kernel_id=list(self.kernels).index(ref) + 1, **invalid)

    def _start_run(self, ref: str, version: int, body: dict) -> None:
        """Lay out the run's folder like today's Kaggle /kaggle (input/competitions/<competition>/,
        input/datasets/<owner>/<slug>/, input/notebooks/<owner>/<slug>/) and run the pushed notebook there,
        in a thread."""
        ex = self.execution
        run = KaggleRun(version, ex.runs_dir / ref.partition("/")[2] / str(version))
        inputs = run.folder / "input"
        for name in body.get("competitionDataSources") or []:
            if name == self.competition:
                shutil.copytree(ex.competition_dir, inputs / "competitions" / name)
        for dataset in body.get("datasetDataSources") or []:
            shutil.copytree({**self.uploads, **ex.datasets}[dataset], inputs / "datasets" / dataset)
        for source in body.get("kernelDataSources") or []:  # the kernel's latest completed output
            done = [r for (k, _), r in sorted(self.runs.items())
                    if k == source and r.done.is_set() and r.result is not None and r.result.ok]
            if done:
                shutil.copytree(done[-1].working, inputs / "notebooks" / source)
        inputs.mkdir(parents=True, exist_ok=True)
        run.working.mkdir(parents=True)
        notebook = run.folder / "__notebook_source__.ipynb"  # beside input/ and working/: not an output
        notebook.write_text(body.get("text") or "")
        self.runs[(ref, version)] = run
        self._log_session("start", ref, version)

        def execute() -> None:
            try:
                run.result = run_kaggle_notebook(notebook, run.folder, ex.timeout, log=run.log, stop=run.stop)
                run.failure = run.result.failure
            # the fake itself failed: the client still gets an answer, and pytest a warning
            except Exception as exc:
                run.failure = f"the fake Kaggle could not run the notebook: {type(exc).__name__}: {exc}"
                run.log.append({"stream_name": "stderr", "time": 0.0, "data": run.failure + "\n"})
                raise
            finally:
                with self._lock:
                    run.done.set()
                    self._log_session("end", ref, version)

        threading.Thread(target=execute, name=f"kaggle-run-{ref}-{version}", daemon=True).start()


    def _log_session(self, event: str, ref: str, version: int) -> None:
        running = sum(not run.done.is_set() for run in self.runs.values())
        self.session_log.append((event, f"{ref} v{version}", running))

    def _version(self, owner: str, slug: str, label: str | None, method: str) -> Version:
        """The version a kernel call names: "v<N>", else the latest (the previous one for the first stale
        calls after a push, as Kaggle may answer)."""
        ref = f"{owner}/{slug}"
        versions = self.kernels.get(ref)
        if not versions:  # Kaggle answers 403, not 404, for a kernel it does not know
            raise Refused(403, "Permission 'kernels.get' was denied")
        if label:
            number = re.fullmatch(r"v(\d+)", label)
            if number is None or not 1 <= int(number[1]) <= len(versions):
                raise Refused(404, f"Version {label!r} of kernel {ref} not found")
            return versions[int(number[1]) - 1]
        if self._stale[(ref, method)] > 0 and len(versions) > 1:
            self._stale[(ref, method)] -= 1
            return versions[-2]
        return versions[-1]

    def _GetKernelSessionStatus(self, request: ApiGetKernelSessionStatusRequest
                                ) -> ApiGetKernelSessionStatusResponse:
        v = self._version(request.user_name, request.kernel_slug, request.version_label,
                          "GetKernelSessionStatus")
        status, message = self.session_status(v, poll=True)
        return sdk_message(ApiGetKernelSessionStatusResponse, status=status, failure_message=message or None)

    def _GetKernel(self, request: ApiGetKernelRequest) -> ApiGetKernelResponse:
        v = self._version(request.user_name, request.kernel_slug, request.version_label, "GetKernel")
        latest = self.kernels[v.ref][-1].body
        return sdk_message(ApiGetKernelResponse, metadata=sdk_message(
            ApiKernelMetadata, ref=v.ref, slug=v.ref.partition("/")[2], author=request.user_name,
            title=latest.get("newTitle", ""), current_version_number=self.versions(v.ref),
            enable_gpu=bool(latest.get("enableGpu")), enable_internet=bool(latest.get("enableInternet"))))

    def _ListKernelSessionOutput(self, request: ApiListKernelSessionOutputRequest
                                 ) -> ApiListKernelSessionOutputResponse:
        if request.page_token:  # "<version>:<first file>" from the answer before: that version's next page
            token = re.fullmatch(r"(\d+):(\d+)", request.page_token)
            versions = self.kernels.get(f"{request.user_name}/{request.kernel_slug}", [])
            if token is None or not 1 <= int(token[1]) <= len(versions):
                raise Refused(400, f"Invalid page token {request.page_token!r}")
            v, start = versions[int(token[1]) - 1], int(token[2])
        else:
            v = self._version(request.user_name, request.kernel_slug, request.version_label,
                              "ListKernelSessionOutput")
            start = 0
        files, log = self.outputs(v)
        end = start + (request.page_size or OUTPUT_PAGE)
        page = [sdk_message(ApiKernelSessionOutputFile, file_name=name, url=self._serve(name, files[name]))
                for name in list(files)[start:end]]
        return sdk_message(ApiListKernelSessionOutputResponse, files=page, log=json.dumps(log),
                           next_page_token=f"{v.number}:{end}" if end < len(files) else None)

    def _GetAcceleratorQuotaStatistics(self, request: ApiGetAcceleratorQuotaStatisticsRequest
                                       ) -> ApiGetAcceleratorQuotaStatisticsResponse:
        if self.quota is None:
            return sdk_message(ApiGetAcceleratorQuotaStatisticsResponse)
        used, total, refresh = self.quota
        when = datetime.fromisoformat(refresh.replace("Z", "+00:00")).astimezone(timezone.utc)
        return sdk_message(ApiGetAcceleratorQuotaStatisticsResponse,
                           quota_refresh_time=when.replace(tzinfo=None),  # the SDK writes naive UTC + "Z"
                           gpu_quota=sdk_message(ApiAcceleratorQuota, time_used=timedelta(hours=used),
                                                 time_reserved=self.reserved(),
                                                 total_time_allowed=timedelta(hours=total)))

    def _GetSubmissionLimits(self, request: ApiGetSubmissionLimitsRequest) -> ApiSubmissionLimits:
        if not self.rules_accepted:  # kagglesdk: "all zero if the user is not on a team yet"
            return sdk_message(ApiSubmissionLimits)
        today = len(self.submissions)
        return sdk_message(ApiSubmissionLimits, num_today=today, num_total=today,
                           num_allowed_now=max(0, self.submissions_per_day - today))

    def log_source(self, path: str, query: str) -> tuple[int, KaggleRun | None, list[dict]]:
        """For a log stream request: (HTTP status, the run when it is still going, else the whole log)."""
        owner, _, slug = path[len(LOG_STREAM):].strip("/").partition("/")
        label = (parse_qs(query).get("versionLabel") or [""])[0]
        try:
            v = self._version(owner, slug, label, "logs")
        except Refused as refused:
            return refused.code, None, []
        run = self.runs.get((v.ref, v.number))
        if run is None:
            return 200, None, self.log
        return 200, (None if run.done.is_set() else run), list(run.log)

    def next_cut(self) -> int | None:
        with self._lock:
            return self.cut_log_stream.pop(0) if self.cut_log_stream else None

    def _CreateCodeSubmission(self, request: ApiCreateCodeSubmissionRequest
                              ) -> ApiCreateCodeSubmissionResponse:
        self._open_competition(request.competition_name)
        ref = f"{request.kernel_owner}/{request.kernel_slug}"
        versions = self.kernels.get(ref, [])
        number = request.kernel_version or len(versions)
        if not 1 <= number <= len(versions):
            raise Refused(400, f"Submission not allowed: kernel {ref} has no version {number}")
        v = versions[number - 1]
        status, _ = self.session_status(v, poll=False)
        if status is not KernelWorkerStatus.COMPLETE:
            raise Refused(400, f"Submission not allowed: version {number} of {ref} has not completed "
                               f"successfully (it is {status.name})")
        if request.file_name not in self.outputs(v)[0]:
            raise Refused(400, f"Submission not allowed: {request.file_name} is not an output file of "
                               f"version {number} of {ref}")
        if v.body.get("enableInternet") is not False:
            raise Refused(400, "Submission not allowed: this competition requires notebooks with internet "
                               "access disabled")
        if len(self.submissions) >= self.submissions_per_day:
            raise Refused(400, f"Submission not allowed: Your team has used its daily Submission allowance "
                               f"({self.submissions_per_day}) today, please try again tomorrow UTC")
        self.submissions.append(request.to_dict())
        return sdk_message(ApiCreateCodeSubmissionResponse, message="Your submission was successfully saved",
                           ref=1000 + len(self.submissions))

    def _ListSubmissions(self, request: ApiListSubmissionsRequest) -> ApiListSubmissionsResponse:
        if request.competition_name != self.competition:
            raise Refused(404, "Competition not found")
        size, page = request.page_size or 20, request.page or 1
        newest_first = list(reversed(range(len(self.submissions))))[(page - 1) * size:page * size]
        return sdk_message(ApiListSubmissionsResponse, submissions=[self._listing(i) for i in newest_first])

    def _listing(self, i: int) -> ApiSubmission:
        """Submission i as ListSubmissions shows it now (each listing brings its scoring closer)."""
        body, scored = self.submissions[i], self._listed[i] >= self.pending_lists
        self._listed[i] += 1
        status = (SubmissionStatus.PENDING if not scored
                  else SubmissionStatus.ERROR if self.submission_error else SubmissionStatus.COMPLETE)
        complete, error = status is SubmissionStatus.COMPLETE, status is SubmissionStatus.ERROR
        return sdk_message(ApiSubmission, ref=1001 + i, date=datetime(2026, 11, 30, 12, i % 60),
                           description=body.get("submissionDescription", ""),
                           file_name=body.get("fileName", ""), status=status,
                           public_score=self.public_score if complete else None,
                           error_description=self.submission_error if error else None)

    def _serve(self, name: str, data: bytes) -> str:
        token = secrets.token_hex(8)
        self._files[token] = data
        return f"{HOST}/files/{token}/{name}"

    def file(self, path: str) -> bytes | None:
        parts = path.split("/")  # /files/<token>/<name>
        return self._files.get(parts[2]) if len(parts) >= 4 else None

    def take_fault(self, method: str) -> int | None:
        with self._lock:
            self.calls.append(method)
            return self._faults[method].pop(0) if self._faults[method] else None


def _handler(fake: FakeKaggle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _path(self) -> str:
            return urlsplit(self.path).path  # absolute targets (proxy style) and plain paths alike

        def _fault(self, method: str) -> bool:
            code = fake.take_fault(method)
            if code is None:
                return False
            if code == 0:
                self.close_connection = True
                self.connection.shutdown(2)  # a reset: no answer at all
            else:
                self._send(code, {"code": code, "message": f"injected {code}"})
            return True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self._path()
            if not path.startswith("/api/v1/"):
                return self._send(404, {"code": 404, "message": "not found"})
            service, _, method = path[len("/api/v1/"):].partition("/")
            if self._fault(method):
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self._send(400, {"code": 400, "message": "Invalid JSON payload received."})
            with fake._lock:
                code, answer, location = fake.handle(service, method, body,
                                                     fake.authorized(self.headers.get("Authorization")))
            if location:
                self.send_response(code)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(code, answer)

        def do_PUT(self) -> None:  # an upload to the createUrl StartBlobUpload gave
            path = self._path()
            if not path.startswith("/upload/"):
                return self._send(404, {"code": 404, "message": "not found"})
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    data += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
            else:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not fake.receive_blob(path[len("/upload/"):], data):
                return self._send(404, {"code": 404, "message": "no such upload"})
            return self._send(200, {})

        def do_GET(self) -> None:
            path = self._path()
            if path.startswith(LOG_STREAM):
                return self._log_stream(path)
            if not path.startswith("/files/"):
                return self._send(404, {"code": 404, "message": "not found"})
            if self._fault("files"):
                return None
            data = fake.file(path)
            if data is None:
                return self._send(404, {"code": 404, "message": "no such file"})
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _log_stream(self, path: str) -> None:
            if self._fault("logs"):
                return None
            if not fake.authorized(self.headers.get("Authorization")):
                return self._send(401, {"code": 401, "message": "Unauthenticated"})
            code, run, log = fake.log_source(path, urlsplit(self.path).query)
            if code != 200:
                return self._send(code, {"code": code, "message": "Permission 'kernels.get' was denied"})
            if run is None:  # the session has ended: the persisted log, as one JSON blob
                return self._send(200, log)
            cut = fake.next_cut()
            self.protocol_version = "HTTP/1.1"  # chunked, so that a cut stream is an error, not an end
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            try:
                while True:
                    finished = run.done.is_set()  # read before the log: what it held then is all there is
                    for entry in run.log[sent:][:None if cut is None else max(cut - sent, 0)]:
                        self._chunk(f"data: {json.dumps(entry)}\n\n")
                        sent += 1
                    if cut is not None and sent >= cut:
                        self.wfile.write(b"40\r\ndata:")  # part of a chunk, then the connection is gone
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return None
                    if finished and sent >= len(run.log):
                        self._chunk(f"data: {END_OF_LOG}\n\n")
                        self.wfile.write(b"0\r\n\r\n")
                        return None
                    time.sleep(0.05)
            except OSError:  # the client went away
                return None

        def _chunk(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _send(self, code: int, obj: dict | list) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client killed mid-call
                self.wfile.write(data)

    return Handler


def zip_bytes(folder: Path) -> bytes:
    """A zip of `folder`'s files, named relative to it (the shape of Kaggle's competition archive)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def point_client_at(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Route the real client (this process and its subprocesses) to the fake on `port`."""
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    for name in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a dead port: the real Kaggle is never reached
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def use_credentials(fake: FakeKaggle, home: Path, monkeypatch: pytest.MonkeyPatch,
                    key: str | None = None) -> Path:
    """A kaggle.json (mode 600) in a temp config folder, and a temp HOME so the user's own files are never
    read."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    config = home / "kaggle-config"
    config.mkdir(parents=True, exist_ok=True)
    path = config / "kaggle.json"
    path.write_text(json.dumps({"username": fake.username, "key": key or fake.key}))
    os.chmod(path, 0o600)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    return path


@contextlib.contextmanager
def serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKaggle]:
    """A running fake Kaggle with the client pointed at it and valid credentials in a kaggle.json.

    Each test module wraps this in its own `fake_kaggle` fixture (three lines, no plugin magic).
    """
    fake = FakeKaggle(workdir=tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    point_client_at(fake.port, monkeypatch)
    use_credentials(fake, tmp_path / "home", monkeypatch)
    try:
        yield fake
    finally:
        fake.wait_for_runs(stop=True)  # no notebook kernel outlives its test
        server.shutdown()
        server.server_close()
