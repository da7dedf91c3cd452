"""The local sweep backend (sweeps/local.py) lends each GPU to one variant at a time: a sweep run again while
variants of an earlier call still run keeps each on the GPU it has, and one whose GPU is not recorded holds
them all; a machine without GPUs runs one variant at a time on its CPU. The variants are stand-in processes
(the sweep's own start, with a command that only waits) that record the GPU they were given."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from helpers import tiny_config

from pipeline.sweeps import local
from pipeline.sweeps.spec import Sweep, Variant
from pipeline.sweeps.state import SweepState, VariantState, VariantStatus

# A variant's process: its argv holds "pipeline.sweeps.variant" (what the sweep looks for in /proc), the
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
(folder / "done.json").write_text("{}")
"""


def stand_in(settings: Path, runs: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", STAND_IN, "pipeline.sweeps.variant", str(settings), runs],
                            env=env, **kwargs)


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """A sweep of 8 variants on `gpus` fake GPUs whose variants run 0.2 s each, and a state where `earlier`
    ({variant: recorded GPU}) still run from an earlier call until the sweep's polls release them, in that
    order, one a poll."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cfg = tiny_config(tmp_path, "sweep.backend=local")
    variants = tuple(Variant(f"v{i}", (f"train.seed={i}",), (f"train.seed={i}",)) for i in range(8))
    spec = Sweep("gpus", tmp_path / "gpus.toml", "demo", (), "", variants)
    records = {v.name: VariantState(v.name, list(v.changed), "digest") for v in variants}
    root = tmp_path / "submissions" / "sweeps" / "gpus"
    state = SweepState(root / "state.json", "gpus", "local", "gpus.toml", records)

    def start(command: list[str], **kwargs) -> subprocess.Popen:  # the sweep's own start, a stand-in command
        return stand_in(Path(command[-1]), "0.2", **kwargs)

    monkeypatch.setattr(local, "subprocess", types.SimpleNamespace(STDOUT=subprocess.STDOUT, Popen=start))

    def run(gpus: int, earlier: dict[str, str]) -> list[subprocess.Popen]:
        monkeypatch.setattr(local, "gpu_count", lambda: gpus)
        started = []
        for name, gpu in earlier.items():
            (root / name).mkdir(parents=True)
            env = {"CUDA_VISIBLE_DEVICES": gpu} if gpu not in ("", "cpu") else {}
            started.append(stand_in(root / name / "settings.toml", "release", env))
            v = state.variants[name]
            v.state, v.pid, v.gpu = VariantStatus.RUNNING, started[-1].pid, gpu
        state.save()
        releases = iter(earlier)

        def poll(seconds: float) -> None:
            time.sleep(0.05)
            name = next(releases, None)
            if name is not None:
                (root / name / "release").touch()

        monkeypatch.setattr(local, "time", types.SimpleNamespace(sleep=poll))
        local.run(cfg, spec, state, ())
        for proc in started:
            proc.wait()
        return started

    return types.SimpleNamespace(run=run, state=state, root=root)


def ran(sweep) -> dict[str, dict]:
    """Each variant's process: the GPU it was given (CUDA_VISIBLE_DEVICES) and when it ran."""
    return {name: json.loads((sweep.root / name / "ran.json").read_text()) for name in sweep.state.variants}


def assert_one_at_a_time(runs: list[dict]) -> None:
    spans = sorted((r["start"], r["end"]) for r in runs)
    assert all(end < next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False)), spans


def test_a_resumed_sweep_pins_every_variant_to_one_gpu_and_never_two_on_one(sweep, capsys):
    # v0 and v1 run on GPUs 2 and 0; v2 and v3 on GPUs an older state file did not record: 4 on 3 GPUs
    sweep.run(3, {"v1": "0", "v2": "", "v3": "", "v0": "2"})
    out = capsys.readouterr().out
    assert "v0 still runs (pid" in out and ") on GPU 2 from an earlier call" in out
    assert out.count("on a device not known here (nothing starts until it ends)") == 2
    runs, state = ran(sweep), sweep.state
    assert all(v.state == VariantStatus.DONE for v in state.variants.values())
    new = [f"v{i}" for i in range(4, 8)]
    for name in new:  # each started on exactly one of the three GPUs, and recorded so
        assert runs[name]["gpu"] in ("0", "1", "2") and state.variants[name].gpu == runs[name]["gpu"], name
    assert state.variants["v0"].gpu == "2" and runs["v0"]["gpu"] == "2"
    unknown_until = max(runs["v2"]["end"], runs["v3"]["end"])
    assert all(runs[name]["start"] > unknown_until for name in new)  # their GPUs could be any: none shared
    for gpu in ("0", "1", "2"):
        assert_one_at_a_time([r for r in runs.values() if r["gpu"] == gpu])
    assert {runs[name]["gpu"] for name in new} == {"0", "1", "2"}  # every GPU used once free


def test_without_gpus_the_variants_run_one_at_a_time_on_the_cpu(sweep, capsys):
    sweep.run(0, {"v0": "cpu", "v1": ""})
    out = capsys.readouterr().out
    assert "v0 still runs (pid" in out and ") on the CPU from an earlier call" in out
    runs, new = ran(sweep), [f"v{i}" for i in range(2, 8)]
    assert all(r["gpu"] is None for r in runs.values())  # no CUDA_VISIBLE_DEVICES
    assert all(v.state == VariantStatus.DONE and v.gpu == "cpu" for v in sweep.state.variants.values()
               if v.name != "v1")
    assert all(runs[name]["start"] > max(runs["v0"]["end"], runs["v1"]["end"]) for name in new)
    assert_one_at_a_time([runs[name] for name in new])
