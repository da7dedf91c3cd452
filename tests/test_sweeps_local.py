"""The local backend (search/local.py) lends each GPU to one session at a time: a sweep run again while
variants of an earlier call still run keeps each on the GPU it has, and one whose GPU is not recorded holds
them all; a machine without GPUs runs one variant at a time on its CPU. The variants are stand-in processes
(the backend's own start, with a command that only waits) that record the GPU they were given and leave a
score."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from helpers import tiny_config

from pipeline.config import to_toml
from pipeline.engine import atomic
from pipeline.search import local
from pipeline.search.scheduler import Scheduler
from pipeline.search.spec import from_sweep
from pipeline.search.study import open_study
from pipeline.search.variants import VariantStatus, variant_rows
from pipeline.sweeps.spec import Sweep, Variant

# A session's process: its argv holds "pipeline.search.session" (what the backend looks for in /proc), the
# settings file in its folder, and how long it runs ("release": until the test drops a file beside it).
STAND_IN = """
import json, os, pathlib, sys, time
folder, start = pathlib.Path(sys.argv[2]).parent, time.time()
def ended():
    if sys.argv[3] == "release":
        return (folder / "release").exists()
    return time.time() > start + float(sys.argv[3])
while not ended():
    time.sleep(0.01)
(folder / "ran.json").write_text(json.dumps({"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start,
                                             "end": time.time()}))
(folder / "score.json").write_text(json.dumps({"fid": 1.0, "distance": 0.1, "mifid": 1.0, "n_gen": 6}))
(folder / "done.json").write_text("{}")
"""


def stand_in(settings: Path, runs: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", STAND_IN, "pipeline.search.session", str(settings), runs],
                            env=env, **kwargs)


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """A sweep of 8 variants on `gpus` fake GPUs whose variants run 0.2 s each, where `earlier`
    ({variant: recorded GPU}) still run from an earlier call until the backend's polls release them, in that
    order, one a poll."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cfg = tiny_config(tmp_path, "sweep.backend=local")
    variants = tuple(Variant(f"v{i}", (f"train.seed={i}",), (f"train.seed={i}",)) for i in range(8))
    search = from_sweep(Sweep("gpus", tmp_path / "gpus.toml", "demo", (), "", variants))
    root = tmp_path / "submissions" / "sweeps" / "gpus"
    scheduler = Scheduler(open_study(search, root, dict.fromkeys((v.name for v in variants), "d")), search,
                          9.0, root)

    def start(command: list[str], **kwargs) -> subprocess.Popen:  # the backend's own start, a stand-in
        return stand_in(Path(command[-1]), "0.2", **kwargs)

    monkeypatch.setattr(local, "subprocess", types.SimpleNamespace(STDOUT=subprocess.STDOUT, Popen=start))

    def run(gpus: int, earlier: dict[str, str]) -> list[subprocess.Popen]:
        monkeypatch.setattr(local, "gpu_count", lambda: gpus)
        started, taken = [], []
        for _ in earlier:  # an earlier call took the first variants and started them, each on its GPU
            session = scheduler.next(taken)
            taken.append((session.trial, session.session))
            name = session.params["variant"]
            folder = local.folder_of(root, search, session)
            folder.mkdir(parents=True)
            atomic.write_text(folder / "settings.toml",
                              to_toml(local.settings(cfg, search, scheduler, session, folder, ())))
            gpu = earlier[name]
            env = {"CUDA_VISIBLE_DEVICES": gpu} if gpu not in ("", "cpu") else {}
            started.append(stand_in(folder / "settings.toml", "release", env))
            atomic.write_json(folder / local.STARTED, {"trial": session.trial, "pid": started[-1].pid,
                                                       "gpu": gpu})
        releases = iter(earlier)

        def poll(seconds: float) -> None:
            time.sleep(0.05)
            name = next(releases, None)
            if name is not None:
                (root / name / "s1" / "release").touch()

        monkeypatch.setattr(local, "time", types.SimpleNamespace(sleep=poll))
        local.run(cfg, search, scheduler, root, ())
        for proc in started:
            proc.wait()
        return started

    return types.SimpleNamespace(run=run, scheduler=scheduler, root=root)


def ran(sweep) -> dict[str, dict]:
    """Each variant's process: the GPU it was given (CUDA_VISIBLE_DEVICES) and when it ran."""
    return {f"v{i}": json.loads((sweep.root / f"v{i}" / "s1" / "ran.json").read_text()) for i in range(8)}


def recorded_gpu(sweep, name: str) -> str:
    return json.loads((sweep.root / name / "s1" / local.STARTED).read_text())["gpu"]


def assert_one_at_a_time(runs: list[dict]) -> None:
    spans = sorted((r["start"], r["end"]) for r in runs)
    assert all(end < next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False)), spans


def test_a_resumed_sweep_pins_every_variant_to_one_gpu_and_never_two_on_one(sweep, capsys):
    # v0 and v1 run on GPUs 2 and 0; v2 and v3 on GPUs an older call did not record: 4 on 3 GPUs
    sweep.run(3, {"v0": "2", "v1": "0", "v2": "", "v3": ""})
    out = capsys.readouterr().out
    assert "variant v0 still runs (pid" in out and ") on GPU 2 from an earlier call" in out
    assert out.count("on a device not known here (nothing starts until it ends)") == 2
    runs = ran(sweep)
    assert all(v.state == VariantStatus.DONE for v in variant_rows(sweep.scheduler.study))
    new = [f"v{i}" for i in range(4, 8)]
    for name in new:  # each started on exactly one of the three GPUs, and recorded so
        assert runs[name]["gpu"] in ("0", "1", "2") and recorded_gpu(sweep, name) == runs[name]["gpu"], name
    assert runs["v0"]["gpu"] == "2"
    unknown_until = max(runs["v2"]["end"], runs["v3"]["end"])
    assert all(runs[name]["start"] > unknown_until for name in new)  # their GPUs could be any: none shared
    for gpu in ("0", "1", "2"):
        assert_one_at_a_time([r for r in runs.values() if r["gpu"] == gpu])
    assert {runs[name]["gpu"] for name in new} == {"0", "1", "2"}  # every GPU used once free


def test_without_gpus_the_variants_run_one_at_a_time_on_the_cpu(sweep, capsys):
    sweep.run(0, {"v0": "cpu", "v1": ""})
    out = capsys.readouterr().out
    assert "variant v0 still runs (pid" in out and ") on the CPU from an earlier call" in out
    runs, new = ran(sweep), [f"v{i}" for i in range(2, 8)]
    assert all(r["gpu"] is None for r in runs.values())  # no CUDA_VISIBLE_DEVICES
    assert all(v.state == VariantStatus.DONE for v in variant_rows(sweep.scheduler.study))
    assert all(recorded_gpu(sweep, name) == "cpu" for name in new)
    assert all(runs[name]["start"] > max(runs["v0"]["end"], runs["v1"]["end"]) for name in new)
    assert_one_at_a_time([runs[name] for name in new])
