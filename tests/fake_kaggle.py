"""A local fake Kaggle that the real `kaggle` client (2.2.4 / kagglesdk) talks to, over HTTP.

It speaks the wire protocol the client uses: POST JSON to /api/v1/{service}/{Method} with HTTP basic
auth, JSON answers with camelCase fields, and file downloads as a redirect (or a signed URL) to a
plain GET. The client is pointed at it as KAGGLE.md says for a non-root user on any port:
KAGGLE_API_ENVIRONMENT=LOCALHOST sends requests to http://localhost/api/v1/..., and http_proxy makes
this server the "proxy" that receives them (it accepts absolute-URL request targets). https_proxy
points at a dead port so nothing can reach the real Kaggle. The same environment works in-process
and for a `python -m pipeline submit` subprocess.

Scripting: `statuses` is the sequence GetKernelSessionStatus answers (the last one repeats),
`push_error` makes SaveKernel answer HTTP 200 with a validation error, `fail(method, *codes)`
answers the next calls of a method with those HTTP codes (0 = drop the connection) before serving it.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import secrets
import threading
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

HOST = "http://localhost"  # what the client believes it talks to (KaggleEnv.LOCAL)


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
    # What the server saw
    calls: list[str] = field(default_factory=list)
    pushes: list[dict] = field(default_factory=list)
    submissions: list[dict] = field(default_factory=list)
    port: int = 0
    _faults: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _files: dict[str, bytes] = field(default_factory=dict)
    _status_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, *codes: int) -> None:
        """Answer the next len(codes) calls of `method` (e.g. "GetKernelSessionStatus", or "files" for
        file downloads) with these HTTP codes; 0 drops the connection without an answer."""
        self._faults[method].extend(codes)

    def log_lines(self, *lines: str) -> None:
        self.log = [{"stream_name": "stdout", "time": float(i), "data": line + "\n"} for i, line in enumerate(lines)]

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
        owner, _, slug = body.get("slug", "").partition("/")
        if owner != self.username:
            return 403, {"code": 403, "message": "Permission 'kernels.create' was denied"}, ""
        self.pushes.append(body)
        if self.push_error:
            return 200, {"error": self.push_error}, ""
        self._status_calls = 0
        return 200, {"ref": f"/code/{owner}/{slug}", "url": f"{HOST}/code/{owner}/{slug}",
                     "versionNumber": len(self.pushes), "kernelId": 1}, ""

    def _pushed(self, body: dict) -> bool:
        return any(p["slug"] == f"{body.get('userName')}/{body.get('kernelSlug')}" for p in self.pushes)

    def _GetKernelSessionStatus(self, body: dict) -> tuple[int, dict, str]:
        if not self._pushed(body):  # Kaggle answers 403, not 404, for a kernel it does not know
            return 403, {"code": 403, "message": "Permission 'kernels.get' was denied"}, ""
        status, message = self.statuses[min(self._status_calls, len(self.statuses) - 1)]
        self._status_calls += 1
        return 200, {"status": status, **({"failureMessage": message} if message else {})}, ""

    def _ListKernelSessionOutput(self, body: dict) -> tuple[int, dict, str]:
        if not self._pushed(body):
            return 403, {"code": 403, "message": "Permission 'kernels.get' was denied"}, ""
        files = [{"fileName": name, "url": self._serve(name, data)} for name, data in self.output_files.items()]
        return 200, {"files": files, "log": json.dumps(self.log)}, ""

    def _CreateCodeSubmission(self, body: dict) -> tuple[int, dict, str]:
        if not self.rules_accepted:
            return 403, {"code": 403, "message": "You must accept this competition's rules"}, ""
        self.submissions.append(body)
        return 200, {"message": "Your submission was successfully saved", "ref": 1000 + len(self.submissions)}, ""

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
                code, answer, location = fake.handle(method, body, self.headers.get("Authorization") == expected)
            if location:
                self.send_response(code)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(code, answer)

        def do_GET(self) -> None:
            path = self._path()
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

        def _send(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
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


def use_credentials(fake: FakeKaggle, home: Path, monkeypatch: pytest.MonkeyPatch, key: str | None = None) -> Path:
    """A kaggle.json (mode 600) in a temp config folder, and a temp HOME so the user's own files are never read."""
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
    fake = FakeKaggle()
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
        server.shutdown()
        server.server_close()
