"""A local fake Kaggle that the real `kaggle` client (2.2.4 / kagglesdk) talks to, over HTTP.

It speaks the wire protocol the client uses: POST JSON to /api/v1/{service}/{Method} with HTTP basic
auth, JSON answers with camelCase fields, and file downloads as a redirect (or a signed URL) to a
plain GET. The client is pointed at it as KAGGLE.md says for a non-root user on any port:
KAGGLE_API_ENVIRONMENT=LOCALHOST sends requests to http://localhost/api/v1/..., and http_proxy makes
this server the "proxy" that receives them (it accepts absolute-URL request targets). https_proxy
points at a dead port so nothing can reach the real Kaggle. The same environment works in-process
and for a `python -m pipeline submit` subprocess.

Scripted mode (the default): `statuses` is the sequence GetKernelSessionStatus answers (the last one
repeats), `output_files` and `log` what ListKernelSessionOutput lists, `push_error` makes SaveKernel
answer HTTP 200 with a validation error, `fail(method, *codes)` answers the next calls of a method with
those HTTP codes (0 = drop the connection) before serving it ("files" for downloads, "logs" for the log
stream). ListSubmissions lists what CreateCodeSubmission received, newest first: each is PENDING for its
first `pending_lists` listings, then COMPLETE with `public_score` (or ERROR with `submission_error`).

Executing mode (`execute_with(competition_dir, datasets)`): Kaggle runs what it is sent. SaveKernel lays
out a fresh `<tmp>/kaggle-runs/<slug>/<version>/` (`input/<competition>/` and `input/<dataset-slug>/` copied
from the given folders, for the sources the push names; `input/<slug>/` for each kernel in its
kernel_sources, from that kernel's latest completed output; an empty `working/`) and runs the pushed
notebook there in the Kaggle-like Python (tests/kaggle_image.py) in a background thread. The status is
`queued`, then `running` while it runs, then `complete` or `error` (with a failureMessage) from what
really happened; the output is the real files under that run's `working/` and its real log. At most
`max_sessions` run at once: a push beyond them is answered as Kaggle answers one beyond the GPU session cap
(the tests' kernels run on the CPU, so every running session counts), and `session_log` records how many ran
at every start and end.

Versions count per kernel, as Kaggle's do. GetAcceleratorQuotaStatistics answers `quota` (hours used,
total, refresh time); GetSubmissionLimits answers what `submissions_per_day` leaves today.

The log stream (`GET /api/v1/kernels/logs/stream/{owner}/{slug}`, what `kaggle kernels logs --follow`
reads) answers as Kaggle's does: while the notebook runs, server-sent events (`data: {json}` per log
entry as it appears, then `data: END_OF_LOG`), chunked so that a cut is seen as one; once it has
ended (and in scripted mode), the whole log as a JSON blob. `cut_log_stream` cuts the next streams
after that many events each, as a load balancer does with idle connections.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import secrets
import shutil
import threading
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from kaggle_image import NotebookRun, kaggle_python, run_kaggle_notebook

HOST = "http://localhost"  # what the client believes it talks to (KaggleEnv.LOCAL)
LOG_STREAM = "/api/v1/kernels/logs/stream/"
END_OF_LOG = "END_OF_LOG"


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

    def status(self) -> tuple[str, str]:
        self.status_calls += 1
        if not self.done.is_set():
            return ("queued" if self.status_calls == 1 else "running"), ""
        return ("complete", "") if self.result is not None and self.result.ok else ("error", self.failure)


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
    log: list[dict] = field(default_factory=list)  # Kaggle's log format: [{stream_name, time, data}]
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
    submissions_per_day: int = 5
    workdir: Path | None = None  # where runs are laid out (serving() sets the test's tmp_path)
    # What the server saw
    calls: list[str] = field(default_factory=list)
    pushes: list[dict] = field(default_factory=list)
    submissions: list[dict] = field(default_factory=list)
    port: int = 0
    _faults: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _files: dict[str, bytes] = field(default_factory=dict)
    _status_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per kernel
    _listed: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # submission -> times listed
    _lock: threading.Lock = field(default_factory=threading.Lock)

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

    def wait_for_runs(self, timeout: float = 60.0, stop: bool = False) -> None:
        """Wait for the runs still going (`stop` cancels them first): a test leaves no kernel behind."""
        for run in list(self.runs.values()):
            if stop:
                run.stop.set()
            run.done.wait(timeout)

    # -- the service ---------------------------------------------------------------------------------
    def handle(self, method: str, body: dict, authorized: bool) -> tuple[int, dict, str]:
        """(HTTP status, JSON body, redirect location) for one API call."""
        if not authorized:
            return 401, {"code": 401, "message": "Unauthenticated"}, ""
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return 404, {"code": 404, "message": f"unknown method {method}"}, ""
        return handler(body)

    def _DownloadDataFiles(self, body: dict) -> tuple[int, dict, str]:
        if body.get("competitionName") != self.competition:
            return 404, {"code": 404, "message": "Competition not found"}, ""
        if not self.rules_accepted:
            return 403, {"code": 403, "message": "You must accept this competition's rules"}, ""
        return 302, {}, self._serve(f"{self.competition}.zip", self.competition_zip)

    def _SaveKernel(self, body: dict) -> tuple[int, dict, str]:
        ref = body.get("slug", "")
        owner, _, slug = ref.partition("/")
        if owner != self.username:
            return 403, {"code": 403, "message": "Permission 'kernels.create' was denied"}, ""
        if self.execution is not None:
            unknown = [d for d in body.get("datasetDataSources") or [] if d not in self.execution.datasets]
            if unknown:  # Kaggle answers HTTP 200 and lists them
                return 200, {"invalidDatasetSources": unknown}, ""
        running = sum(not run.done.is_set() for run in self.runs.values())
        if self.refuse_pushes or self.execution is not None and running >= self.max_sessions:
            self.refuse_pushes = max(0, self.refuse_pushes - 1)
            self.session_log.append(("refused", ref, running))
            return 200, {"error": f"Maximum batch GPU session count of {self.max_sessions} reached"}, ""
        self.pushes.append(body)
        if self.push_error:
            return 200, {"error": self.push_error}, ""
        version = self.versions(ref)
        self._status_calls[ref] = 0
        if self.execution is not None:
            self._start_run(ref, version, body)
        return 200, {"ref": f"/code/{ref}", "url": f"{HOST}/code/{ref}", "versionNumber": version,
                     "kernelId": 1}, ""

    def versions(self, ref: str) -> int:
        """How many versions of the kernel `ref` were pushed (its latest version's number)."""
        return sum(p["slug"] == ref for p in self.pushes)

    def _start_run(self, ref: str, version: int, body: dict) -> None:
        """Lay out the run's folder like Kaggle's /kaggle and run the pushed notebook there, in a thread."""
        ex = self.execution
        run = KaggleRun(version, ex.runs_dir / ref.partition("/")[2] / str(version))
        inputs = run.folder / "input"
        for name in body.get("competitionDataSources") or []:
            if name == self.competition:
                shutil.copytree(ex.competition_dir, inputs / name)
        for dataset in body.get("datasetDataSources") or []:
            shutil.copytree(ex.datasets[dataset], inputs / dataset.split("/", 1)[1])
        for source in body.get("kernelDataSources") or []:  # the kernel's latest completed output
            done = [r for (k, _), r in sorted(self.runs.items())
                    if k == source and r.done.is_set() and r.result is not None and r.result.ok]
            if done:
                shutil.copytree(done[-1].working, inputs / source.partition("/")[2])
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

    @property
    def most_running(self) -> int:
        """The most sessions that ever ran at once (the fake's own log)."""
        return max((n for _, _, n in self.session_log), default=0)

    def latest_run(self, ref: str) -> KaggleRun | None:
        return self.runs.get((ref, self.versions(ref))) if self.execution is not None else None

    def _pushed(self, body: dict) -> bool:
        return self.versions(_ref(body)) > 0

    def _GetKernelSessionStatus(self, body: dict) -> tuple[int, dict, str]:
        if not self._pushed(body):  # Kaggle answers 403, not 404, for a kernel it does not know
            return 403, {"code": 403, "message": "Permission 'kernels.get' was denied"}, ""
        run = self.latest_run(_ref(body))
        if run is not None:
            status, message = run.status()
        else:
            calls = self._status_calls[_ref(body)]
            status, message = self.statuses[min(calls, len(self.statuses) - 1)]
            self._status_calls[_ref(body)] += 1
        return 200, {"status": status, **({"failureMessage": message} if message else {})}, ""

    def _GetKernel(self, body: dict) -> tuple[int, dict, str]:
        if not self._pushed(body):
            return 403, {"code": 403, "message": "Permission 'kernels.get' was denied"}, ""
        ref = _ref(body)
        return 200, {"metadata": {"ref": ref, "slug": ref.partition("/")[2],
                                  "currentVersionNumber": self.versions(ref)}}, ""

    def _GetAcceleratorQuotaStatistics(self, body: dict) -> tuple[int, dict, str]:
        if self.quota is None:
            return 200, {}, ""
        used, total, refresh = self.quota
        gpu = {"timeUsed": f"{used * 3600:.0f}s", "totalTimeAllowed": f"{total * 3600:.0f}s"}
        return 200, {"quotaRefreshTime": refresh, "gpuQuota": gpu}, ""

    def _GetSubmissionLimits(self, body: dict) -> tuple[int, dict, str]:
        today = len(self.submissions)
        return 200, {"numToday": today, "numTotal": today,
                     "numAllowedNow": max(0, self.submissions_per_day - today)}, ""

    def _ListKernelSessionOutput(self, body: dict) -> tuple[int, dict, str]:
        if not self._pushed(body):
            return 403, {"code": 403, "message": "Permission 'kernels.get' was denied"}, ""
        run = self.latest_run(_ref(body))
        if run is not None:  # what the notebook really left in /kaggle/working, and its real log
            outputs = {p.relative_to(run.working).as_posix(): p.read_bytes()
                       for p in sorted(run.working.rglob("*")) if p.is_file()}
            log = list(run.log)
        else:
            outputs, log = self.output_files, self.log
        files = [{"fileName": name, "url": self._serve(name, data)} for name, data in outputs.items()]
        return 200, {"files": files, "log": json.dumps(log)}, ""

    def log_source(self, path: str, query: str) -> tuple[int, KaggleRun | None, list[dict]]:
        """For a log stream request: (HTTP status, the run when it is still going, else the whole log)."""
        owner, _, slug = path[len(LOG_STREAM):].strip("/").partition("/")
        if not self._pushed({"userName": owner, "kernelSlug": slug}):
            return 403, None, []
        label = (parse_qs(query).get("versionLabel") or [""])[0].lstrip("v")
        if self.execution is None:
            return 200, None, self.log
        ref = f"{owner}/{slug}"
        run = self.runs.get((ref, int(label))) if label.isdigit() else self.latest_run(ref)
        if run is None:
            return 404, None, []
        return 200, (None if run.done.is_set() else run), list(run.log)

    def next_cut(self) -> int | None:
        with self._lock:
            return self.cut_log_stream.pop(0) if self.cut_log_stream else None

    def _CreateCodeSubmission(self, body: dict) -> tuple[int, dict, str]:
        if not self.rules_accepted:
            return 403, {"code": 403, "message": "You must accept this competition's rules"}, ""
        self.submissions.append(body)
        return 200, {"message": "Your submission was successfully saved",
                     "ref": 1000 + len(self.submissions)}, ""

    def _ListSubmissions(self, body: dict) -> tuple[int, dict, str]:
        if body.get("competitionName") != self.competition:
            return 404, {"code": 404, "message": "Competition not found"}, ""
        size, page = int(body.get("pageSize") or 20), int(body.get("page") or 1)
        newest_first = list(reversed(range(len(self.submissions))))[(page - 1) * size:page * size]
        return 200, {"submissions": [self._listing(i) for i in newest_first]}, ""

    def _listing(self, i: int) -> dict:
        """Submission i as ListSubmissions shows it now (each listing brings its scoring closer)."""
        body, scored = self.submissions[i], self._listed[i] >= self.pending_lists
        self._listed[i] += 1
        status = "PENDING" if not scored else "ERROR" if self.submission_error else "COMPLETE"
        return {"ref": 1001 + i, "date": f"2026-11-30T12:{i % 60:02d}:00.000Z",
                "description": body.get("submissionDescription", ""), "fileName": body.get("fileName", ""),
                "status": status, **({"publicScore": self.public_score} if status == "COMPLETE" else {}),
                **({"errorDescription": self.submission_error} if status == "ERROR" else {})}

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


def _ref(body: dict) -> str:
    """owner/slug of a kernel request's body."""
    return f"{body.get('userName')}/{body.get('kernelSlug')}"


def _handler(fake: FakeKaggle) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{fake.username}:{fake.key}".encode()).decode()

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
            method = path.rsplit("/", 1)[-1]
            if self._fault(method):
                return
            body = json.loads(raw or b"{}")
            with fake._lock:
                code, answer, location = fake.handle(method, body,
                                                     self.headers.get("Authorization") == expected)
            if location:
                self.send_response(code)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(code, answer)

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
            if self.headers.get("Authorization") != expected:
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
