"""A Python like Kaggle's notebook image, built from kernels/kaggle-image.toml, and notebooks run in it.

`kaggle_python()` builds (once) or reuses `<repo>/.venv-kaggle/`: a virtual environment holding exactly the
toml's [installed] packages at its versions ("2.0.*" a series, "*" whatever pip picks), except the
[local] ones (torch, torchvision: Kaggle's cu128 builds for Python 3.12 cannot be had here), which are
installed at the version this interpreter has. After installing, every [installed] package must be
there and every [absent] one must not be importable (a dependency could drag one in): otherwise the build
fails, naming them. It is reused while the stamp written last into it holds the same hash of the toml, the
local versions and this Python; anything else (a changed toml, an interrupted build) rebuilds it from
scratch, in place, because a venv's scripts hold its absolute path. A file lock (fcntl, in the temp
folder: the venv itself is deleted on a rebuild) keeps two pytest processes from building it at once.
It can only fail, never skip: a test that needs it fails with the reason.

`run_kaggle_notebook()` executes a notebook with nbclient (in this process) on a kernel started with that
Python in a folder laid out like Kaggle's (`root/input`, `root/working` as the cwd, KAGGLE_ROOT=root,
KAGGLE_KERNEL_RUN_TYPE=Batch), without this process's PYTHONPATH, virtualenv or Kaggle credentials, and
returns the outcome and the cells' output as Kaggle's log entries ({stream_name, time, data}), which it
also appends to a list as they come so a caller (the fake Kaggle) can serve the log of a running notebook.
"""
from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_TOML = REPO / "kernels" / "kaggle-image.toml"
VENV = REPO / ".venv-kaggle"
STAMP_NAME = "kaggle-image.stamp"
KERNEL_NAME = "kaggle-python"
PIP_TIMEOUT_S = 1800
# Import names that differ from the distribution's (for packages that are absent, nothing installed says).
MODULES = {"pillow": "PIL", "clean-fid": "cleanfid", "scikit-learn": "sklearn", "opencv-python": "cv2"}
# Never imported while checking: `import kaggle` authenticates at import time.
FIND_ONLY = {"kaggle"}
# What the notebook's kernel must not inherit from this process.
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "VIRTUAL_ENV",
               "__PYVENV_LAUNCHER__", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN",
               "KAGGLE_CONFIG_DIR", "JUPYTER_PATH")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class KaggleImageError(RuntimeError):
    """The Kaggle-like Python cannot be built or does not match kernels/kaggle-image.toml."""


@dataclass(frozen=True)
class ImageSpec:
    installed: dict[str, str]  # distribution -> version spec as written ("2.0.8", "2.0.*", "*")
    absent: tuple[str, ...]
    # distribution -> the version this interpreter has (installed instead of the toml's)
    local: dict[str, str]
    digest: str

    def requirement(self, name: str) -> str:
        version = self.local.get(name, self.installed[name])
        return name if version == "*" else f"{name}=={version}"

    def expected(self, name: str) -> str:
        """The version spec the environment must satisfy for `name`."""
        return self.local.get(name, self.installed[name])


def image_spec(toml: Path = IMAGE_TOML) -> ImageSpec:
    """kernels/kaggle-image.toml with the [local] packages at this interpreter's versions."""
    raw = toml.read_bytes()
    data = tomllib.loads(raw.decode())
    installed = {name: str(version) for name, version in data.get("installed", {}).items()}
    local = {}
    for name in data.get("local", {}).get("from_this_python", []):
        try:
            local[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise KaggleImageError(f"{toml}: [local] takes {name} from this Python ({sys.executable}), "
                                   "which does not have it installed") from None
        installed.setdefault(name, "*")
    absent = tuple(data.get("absent", {}).get("packages", []))
    if not installed:
        raise KaggleImageError(f"{toml}: no [installed] packages")
    key = json.dumps({"local": local, "python": sys.version, "base": sys.base_prefix},
                     sort_keys=True).encode()
    return ImageSpec(installed, absent, local, hashlib.sha256(raw + b"\0" + key).hexdigest())


def satisfies(version: str | None, spec: str) -> bool:
    """Whether an installed `version` meets a toml version spec ("*", "2.0.*" or an exact version)."""
    if version is None:
        return False
    if spec == "*":
        return True
    if spec.endswith(".*"):
        return version.startswith(spec[:-1])
    return version == spec


# -- the environment ------------------------------------------------------------------------------------

def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


@functools.cache
def kaggle_python() -> Path:
    """The Kaggle-like Python (`.venv-kaggle/bin/python`), built first when missing or out of date."""
    return ensure_venv(VENV, IMAGE_TOML)


def ensure_venv(venv: Path, toml: Path) -> Path:
    """The python of a venv at `venv` holding what `toml` lists: reused when its stamp matches, else built."""
    spec = image_spec(toml)
    if _stamp(venv) == spec.digest:
        return venv_python(venv)
    with _build_lock(venv):
        if _stamp(venv) != spec.digest:  # another process may have built it while this one waited
            _build(venv, spec, toml)
    return venv_python(venv)


def _stamp(venv: Path) -> str:
    try:
        return (venv / STAMP_NAME).read_text().strip() if venv_python(venv).exists() else ""
    except OSError:
        return ""


@contextlib.contextmanager
def _build_lock(venv: Path):
    name = hashlib.sha256(str(venv).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"venv-kaggle-{name}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, also when the holder is killed
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build(venv: Path, spec: ImageSpec, toml: Path) -> None:
    """Build the venv from scratch at its final path; the stamp, written last, marks it complete."""
    started = time.monotonic()
    print(f"kaggle_image: building {venv} from {toml.name} (once; a minute or two)", file=sys.stderr)
    if venv.exists() or venv.is_symlink():
        shutil.rmtree(venv)
    requirements = [spec.requirement(name) for name in spec.installed]
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(venv_python(venv)), "-m", "pip", "install", "--no-input", "--progress-bar", "off", "-q",
              *requirements]]
    for argv in steps:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                                  env=registry_env(), check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KaggleImageError(f"building {venv}: {' '.join(argv[:4])} ...: {exc}") from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
            raise KaggleImageError(f"building {venv}: `{' '.join(argv)}` failed "
                                   f"(exit {proc.returncode}):\n{tail}")
    wrong = problems(inspect(venv_python(venv), spec), spec)
    if wrong:
        raise KaggleImageError(f"{venv} does not match {toml}:\n  " + "\n  ".join(wrong))
    tmp = venv / f".{STAMP_NAME}.tmp"
    tmp.write_text(spec.digest + "\n")
    os.replace(tmp, venv / STAMP_NAME)
    print(f"kaggle_image: built {venv} in {time.monotonic() - started:.0f} s", file=sys.stderr)


# Run by the Kaggle-like Python: for each package, its installed version, whether it imports, and from where.
_INSPECT = r"""
import importlib, importlib.metadata as md, importlib.util, json, sys
args = json.loads(sys.argv[1])
report = {"sys_path": sys.path, "executable": sys.executable, "prefix": sys.prefix, "packages": {}}
for name, module in args["modules"].items():
    try:
        version = md.version(name)
    except md.PackageNotFoundError:
        version = None
    entry = {"version": version, "module": module, "importable": False, "file": None, "error": None}
    try:
        if module in args["find_only"]:
            found = importlib.util.find_spec(module)
            entry["importable"], entry["file"] = found is not None, found and found.origin
        else:
            mod = importlib.import_module(module)
            entry["importable"], entry["file"] = True, getattr(mod, "__file__", None)
    except Exception as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
    report["packages"][name] = entry
print(json.dumps(report))
"""


def module_name(distribution: str) -> str:
    return MODULES.get(distribution.lower(), distribution.replace("-", "_"))


def inspect(python: Path, spec: ImageSpec) -> dict:
    """What `python` has of every [installed] and [absent] package: {"packages": {name: {version, importable,
    file, error}}, "sys_path", "executable", "prefix"}; one subprocess."""
    modules = {name: module_name(name) for name in (*spec.installed, *spec.absent)}
    argv = [str(python), "-c", _INSPECT, json.dumps({"modules": modules, "find_only": sorted(FIND_ONLY)})]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=clean_env(), check=False,
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise KaggleImageError(f"{python} could not report its packages:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def problems(report: dict, spec: ImageSpec) -> list[str]:
    """How the environment `report` (from inspect()) differs from the spec; empty when it matches."""
    found, wrong = report["packages"], []
    for name in spec.installed:
        entry, want = found[name], spec.expected(name)
        if not entry["importable"]:
            wrong.append(f"{name} must be importable (as {entry['module']}): {entry['error'] or 'not found'}")
        elif not satisfies(entry["version"], want):
            wrong.append(f"{name} must be {want}, found {entry['version']}")
    for name in spec.absent:
        entry = found[name]
        if entry["version"] is not None or entry["importable"]:
            wrong.append(f"{name} must not be installed (Kaggle's image lacks it), found {entry['version']} "
                         f"at {entry['file']}")
    return wrong


def registry_env() -> dict[str, str]:
    """clean_env() for pip: the tests point every proxy variable at a dead or fake local port so that nothing
    reaches the real Kaggle; pip must still reach the package registry the way this machine is set up."""
    return {k: v for k, v in clean_env().items()
            if not (k.lower() in ("http_proxy", "https_proxy", "all_proxy")
                    and ("127.0.0.1" in v or "localhost" in v))}


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without PYTHONPATH, its virtualenv and Kaggle credentials, with the
    Kaggle-like venv first on PATH: what a Python in that venv sees (plus `extra`)."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    own_venv = Path(sys.prefix).resolve() if sys.prefix != sys.base_prefix else None
    path = [p for p in env.get("PATH", "").split(os.pathsep)
            if p and not (own_venv and Path(p).resolve().is_relative_to(own_venv))]
    env["PATH"] = os.pathsep.join([str(VENV / "bin"), *path])
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra or {})
    return env


# -- notebooks --------------------------------------------------------------------------------------------

def kaggle_kernelspec(folder: Path) -> str:
    """Write a Jupyter kernelspec for the Kaggle-like Python into `folder`/kernels/ and return its name; with
    JUPYTER_PATH=`folder` (or a KernelSpecManager over `folder`/kernels) nbclient starts notebooks on it."""
    python = kaggle_python()
    spec = Path(folder) / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Kaggle-like Python", "language": "python"}))
    return KERNEL_NAME


@dataclass
class NotebookRun:
    notebook: object  # the executed nbformat.NotebookNode (outputs filled in as far as it got)
    ok: bool
    error: str = ""  # the CellExecutionError text (or what else stopped the run); "" when ok
    failure: str = ""  # one line: "ExceptionName: message", or the time limit that was hit
    log: list[dict] = field(default_factory=list)  # Kaggle's log entries: {"stream_name", "time", "data"}
    seconds: float = 0.0

    def log_text(self) -> str:
        return "".join(entry["data"] for entry in self.log)


def run_kaggle_notebook(notebook_path: Path, root: Path, timeout: float, env: dict | None = None, *,
                        log: list[dict] | None = None, stop: threading.Event | None = None) -> NotebookRun:
    """Execute the notebook in the Kaggle-like Python, cwd `root`/working, and return how it went; a failing
    cell does not raise. `timeout` (s) bounds the whole run (and so each cell). Log entries are appended to
    `log` as they arrive (Kaggle's format, `time` in seconds since the start); `stop` cancels the run."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    root = Path(root).resolve()
    log = [] if log is None else log
    nb = nbformat.read(str(notebook_path), as_version=4)
    started = time.monotonic()

    def record(stream: str, text: str) -> None:
        now = round(time.monotonic() - started, 3)
        for line in text.splitlines(keepends=True):
            log.append({"stream_name": stream, "time": now, "data": line})

    with tempfile.TemporaryDirectory(prefix="kaggle-kernel-") as scratch:
        kernel_name = kaggle_kernelspec(Path(scratch))
        specs = KernelSpecManager(kernel_dirs=[str(Path(scratch) / "kernels")])

        class Client(NotebookClient):
            def create_kernel_manager(self):
                self.km = self.kernel_manager_class(kernel_name=self.kernel_name, config=self.config,
                                                    kernel_spec_manager=specs)
                return self.km

            def output(self, outs, msg, display_id, cell_index):
                out = super().output(outs, msg, display_id, cell_index)
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    record(content.get("name", "stdout"), content.get("text", ""))
                elif kind == "error":
                    record("stderr",
                           ANSI.sub("", "\n".join(content.get("traceback")
                                                  or [f"{content.get('ename')}: {content.get('evalue')}"]))
                           + "\n")
                elif kind == "execute_result" and "text/plain" in content.get("data", {}):
                    record("stdout", content["data"]["text/plain"] + "\n")
                return out

        client = Client(nb, kernel_name=kernel_name, timeout=max(1, int(timeout)),
                        shutdown_kernel="immediate", resources={"metadata": {"path": str(root / "working")}})
        kernel_env = clean_env({"KAGGLE_ROOT": str(root), "KAGGLE_KERNEL_RUN_TYPE": "Batch",
                                "IPYTHONDIR": str(Path(scratch) / "ipython"), **(env or {})})

        async def execute() -> str:
            """"" when the notebook ran to its end, else why it stopped early (the cell errors raise)."""
            task = asyncio.ensure_future(client.async_execute(env=kernel_env, cwd=str(root / "working")))
            deadline = time.monotonic() + timeout
            while not task.done():
                await asyncio.wait({task}, timeout=0.2)
                reason = ("stopped" if stop is not None and stop.is_set() else
                          f"the notebook ran past its time limit of {timeout:g} s"
                          if time.monotonic() > deadline else "")
                if reason and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):  # e.g. DeadKernelError: ours
                        await task
                    if client.km is not None:  # cancelled before nbclient's own cleanup had finished
                        with contextlib.suppress(Exception):
                            await client._async_cleanup_kernel()
                    return reason
            task.result()
            return ""

        run = NotebookRun(notebook=nb, ok=False, log=log)
        try:
            reason = asyncio.run(execute())
            run.ok, run.error, run.failure = not reason, reason, reason
        except CellExecutionError as exc:  # the kernel's own error output is in the log already
            run.error, run.failure = ANSI.sub("", str(exc)), f"{exc.ename}: {exc.evalue}"
        except (CellTimeoutError, DeadKernelError) as exc:
            run.error = run.failure = f"{type(exc).__name__}: {exc}"
        finally:
            atexit.unregister(client._cleanup_kernel)  # nbclient's, left behind when a run is cancelled
        if run.error and run.error == run.failure:  # stopped from outside: say so in the log, as Kaggle does
            record("stderr", run.failure + "\n")
    run.seconds = time.monotonic() - started
    return run


if __name__ == "__main__":  # make test builds it before the tests start: none of them waits for pip
    print(kaggle_python())
