"""Sweeps: a file of variants checked before anything runs, run locally or on the fake Kaggle (never more than
two at once there, a failure reported with its log line, nothing pushed twice after a kill), ranked by local
MiFID in the terminal and on the leaderboard page, and the best one submitted from its training kernel."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_KAGGLE, cli, one_line_error

from pipeline.cli import main
from pipeline.jobs.record import JobName
from pipeline.jobs.store import JobStore
from pipeline.leaderboard import sweeps
from pipeline.search.scheduler import Scheduler
from pipeline.search.spec import from_sweep
from pipeline.search.study import existing, open_study
from pipeline.search.variants import table, variant_rows
from pipeline.sweeps import spec
from pipeline.training.clock import STEP_CLOCK_ENV

# A sweep on the demo preset made tiny (32 px data, a one-block ResNet CycleGAN, one epoch on the CPU).
TINY = ["train.time_budget_min=0", "train.epochs=1", "train.image_size=32", "cyclegan.generator=resnet",
        "cyclegan.ngf=4", "cyclegan.ndf=4", "cyclegan.n_blocks=1", "train.log_every=2",
        "train.sample_every=4", "hardware.device=cpu", "sweep.score_images=6", "download.image_size=32",
        "augment.variants=1"]


def write_sweep(path: Path, preset: str, base: list[str], variants: dict[str, list[str]]) -> Path:
    lines = [f'preset = "{preset}"', f"set = {json.dumps(base)}"]
    for name, sets in variants.items():
        lines += ["[[variant]]", f'name = "{name}"', f"set = {json.dumps(sets)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_grid_expands_to_named_variants_after_the_base(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text('preset = "demo"\n[grid]\n"train.lr" = [1e-4, 2e-4]\n"cyclegan.generator" = ["unet", '
                    '"resnet"]\n')
    sweep = spec.load(str(path))
    # the demo's own lr and U-Net: that combination is the base, which runs once
    assert [v.name for v in sweep.variants] == [
        "base", "lr=0.0001,cyclegan.generator=unet", "lr=0.0001,cyclegan.generator=resnet",
        "lr=0.0002,cyclegan.generator=resnet"]
    assert "lr=0.0002,cyclegan.generator=unet is the base itself" in capsys.readouterr().out
    assert sweep.variants[3].changed == ("cyclegan.generator=resnet",)
    assert sweep.variants[1].changed == ("train.lr=0.0001",)


@pytest.mark.parametrize("variants, message", [
    ({"typo": ["train.nope=1"]}, "variant 'typo': unknown setting 'train.nope'"),
    ({"same": ["train.seed=0"]}, "variant 'same' changes nothing from the base"),
    ({"a": ["train.seed=1"], "A": ["train.seed=2"]}, "variant 'A' makes the same kernel slug as another"),
    ({"base": ["train.seed=1"]}, "variant 'base' is named twice"),
    ({"bad": ["train.ema=2"]}, "variant 'bad': setting train.ema must be in 0..1"),
])
def test_a_sweep_file_is_checked_before_anything_runs(tmp_path, capsys, variants, message):
    path = write_sweep(tmp_path / "bad.toml", "demo", [], variants)
    assert main(["sweep", str(path), "--set", f"paths.submissions={tmp_path / 'subs'}"]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "subs").exists()  # nothing ran, nothing was written


def test_the_ready_sweeps_load(capsys):
    for name in ("families", "recipe", "demo"):
        sweep = spec.load(name)
        assert sweep.variants[0].name == "base" and len(sweep.variants) >= 3
        assert all(v.changed for v in sweep.variants[1:])
    assert spec.load("recipe").variant("no-diffaugment").changed == ('train.diffaugment=""',)


def test_the_demo_sweep_runs_here_and_says_so_before_anything_starts(tmp_path, capsys):
    # `make sweep SWEEP=demo` takes minutes on a laptop: its own file keeps it off Kaggle
    assert main(["sweep", "demo", *cli(tmp_path, "sweep")[1:], "--status"]) == 0
    assert "sweep demo (local;" in capsys.readouterr().out



def test_a_sweep_folder_of_the_version_before_is_refused_in_one_line(tmp_path, capsys):
    old = tmp_path / "submissions" / "sweeps" / "demo"
    old.mkdir(parents=True)
    (old / "state.json").write_text('{"name": "demo", "variants": {}}')
    assert main(["sweep", "demo", *cli(tmp_path, "sweep")[1:]]) == 2
    error = one_line_error(capsys)
    assert f"{old / 'state.json'}: written by an earlier version" in error and f"mv {old} {old}.old" in error
    assert sorted(p.name for p in old.iterdir()) == ["state.json"]  # nothing written beside it


def rows_of(tmp_path: Path, name: str) -> list:
    study = existing(tmp_path / "submissions" / "sweeps" / name, name)
    return variant_rows(study)


def test_the_terminal_table_and_the_page_show_the_same_columns_and_cells(tmp_path):
    path = write_sweep(tmp_path / "two.toml", "demo", [], {"wide": ["train.lr=0.0001", "cyclegan.ngf=8"],
                                                            "broken": ["train.image_size=128"]})
    search = from_sweep(spec.load(str(path)))
    study = open_study(search, tmp_path / "sweeps" / "two", {"wide": "d1", "broken": "d2"})
    scheduler = Scheduler(study, search, 9.0, tmp_path / "sweeps" / "two")
    running: list[tuple[int, int]] = []
    for _ in range(3):
        session = scheduler.next(running)
        running.append((session.trial, session.session))
    trials = {study.trials[n].user_attrs["variant"]: n for n, _ in running}
    scheduler.report(trials["wide"], 1, 41.23456, 1.0, {"steps": 1200, "seconds": 3725.0, "fid": 41.23456,
                                                        "distance": 0.25, "mifid": 41.23456})
    scheduler.failed(trials["broken"], 1, "too large", 1.0)
    header, *rows = [re.split(r" {2,}", line) for line in
                     table("two", "local", variant_rows(study)).splitlines()[1:]]
    assert header == ["rank", "variant", "state", "local MiFID", "FID", "d", "steps", "training time",
                      "settings changed from the base"]
    assert rows == [["1", "wide", "done", "41.235", "41.235", "0.2500", "1,200", "1h02m",
                     "train.lr=0.0001, cyclegan.ngf=8"],
                    ["2", "base", "running", "-", "-", "-", "-", "-", "the base"],
                    ["3", "broken", "failed: too large", "-", "-", "-", "-", "-", "train.image_size=128"]]
    page, used = sweeps.sections(tmp_path, tmp_path / "assets", [])
    # the asset folders are named as the run folders
    assert used == {"sweep-two-wide", "sweep-two-base", "sweep-two-broken"}
    assert re.findall(r"<th>(.*?)</th>", page) == [*header, "fixed photos &rarr; Monet"]
    cells = [re.findall(r'<td class="\w+">(.*?)</td>', row) for row in page.split("</tr>")[1:4]]
    assert [c[:-1] for c in cells] == [["1", "wide", "done", "41.235", "41.235", "0.2500", "1,200", "1h02m",
                                        "train.lr=0.0001<br>cyclegan.ngf=8"], rows[1], rows[2]]


@pytest.mark.slow
def test_a_local_sweep_runs_each_variant_ranks_them_and_shows_them_on_the_page(tmp_path, competition,
                                                                             inception_weights, capsys):
    path = write_sweep(tmp_path / "tiny.toml", "demo", TINY, {"wide": ["cyclegan.ngf=8"],
                                                               "broken": ["train.image_size=64"]})
    args = cli(tmp_path, "sweep", f"download.source=dir:{competition}", f"score.weights={inception_weights}",
               "sweep.backend=local")
    args.insert(1, str(path))
    assert main(args) == 0
    out = capsys.readouterr().out
    ranked = rows_of(tmp_path, "tiny")
    table = out[out.index("sweep tiny (local"):].splitlines()
    assert [line.split()[1] for line in table[2:5]] == [v.name for v in ranked]  # best (lowest MiFID) first
    assert [v.state for v in ranked] == ["done", "done", "failed"] and ranked[0].mifid <= ranked[1].mifid
    assert all(v.n_images == 6 and v.steps for v in ranked[:2])
    assert "train.image_size=64 is larger than the training images" in ranked[2].error
    page = (tmp_path / "submissions" / "leaderboard.html").read_text()
    section = page[page.index("<h2>Sweep tiny</h2>"):]
    assert "sweep-tiny-" not in page[:page.index("<h2>Sweep tiny</h2>")]  # not among the submissions' runs
    assert section.count('<tr class="variant"') == 3 and section.count('class="fixed"') == 8  # 4 photos x 2
    # run again: everything is done, nothing is trained again
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "data" / "runs").rglob("last.pt")}
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "data" / "runs").rglob("last.pt")} == mtimes
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in listed] == [v.name for v in ranked] and listed[0]["mifid"] == ranked[0].mifid
    assert set(listed[0]) >= {"name", "state", "fid", "mifid", "settings"}


# The tiny kaggle preset; each variant trains 9 s of its step clock.
KAGGLE_TINY = [*TINY_KAGGLE, "train.epochs=1000", "train.log_every=5", "train.sample_every=50",
               "train.time_budget_min=0.15", "sweep.score_images=6"]


@pytest.mark.slow
def test_a_kaggle_sweep_runs_two_at_once_reports_a_failure_and_submits_the_best(tmp_path, fake_kaggle,
                                                                            competition, inception_weights,
                                                                            monkeypatch):
    monkeypatch.setenv(STEP_CLOCK_ENV, "0.5")  # each variant's notebook trains 18 steps, however loaded
    weights = tmp_path / "fid-weights"
    weights.mkdir()
    shutil.copy(inception_weights, weights / "pt_inception-2015-12-05-6726825d.pth")
    fake_kaggle.execute_with(competition, {"tester/fid-weights": weights})
    fake_kaggle.max_sessions = 3  # Kaggle would run all three: the sweep's own limit (sweep.parallel=2) holds
    path = write_sweep(tmp_path / "trio.toml", "kaggle", KAGGLE_TINY,
                       {"wide": ["cyclegan.ngf=8"], "broken": ["train.image_size=64"]})
    sets = [f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}",
            "kernel.accelerator=none", "kernel.margin_min=0", "kernel.weights_dataset=tester/fid-weights",
            "submit.poll_interval_s=1", "submit.retry_delay_s=0", "sweep.submit=best", "zip.min_images=5",
            "zip.max_images=20", "zip.image_size=32", "generate.count=10"]
    command = [sys.executable, "-m", "pipeline", "sweep", str(path), "--config", "demo",
               *[arg for s in sets for arg in ("--set", s)]]
    # killed once two variants are pushed, then run again: it follows them and pushes the third once
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fake_kaggle.wait_for_pushes(2, timeout=300)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert len(fake_kaggle.pushes) == 2
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    slugs = [p["slug"] for p in fake_kaggle.pushes]
    assert slugs[:3] == ["tester/monet-pipeline-trio-base-train-1", "tester/monet-pipeline-trio-wide-train-1",
                         "tester/monet-pipeline-trio-broken-train-1"]
    assert len(slugs) == 4 and slugs[3] == "tester/monet-pipeline"  # no variant pushed twice, then the submit
    assert fake_kaggle.most_running == 2  # the fake's own log: two at once, never three
    events = [(e, name) for e, name, _ in fake_kaggle.session_log]
    third = events.index(("start", "tester/monet-pipeline-trio-broken-train-1 v1"))
    assert any(e == "end" for e, _ in events[:third])  # the third started only once one had ended
    variants = {v.name: v for v in rows_of(tmp_path, "trio")}
    assert variants["broken"].state == "failed"
    assert "train.image_size=64 is larger than the training images" in variants["broken"].error
    assert f"failed: {variants['broken'].error}" in proc.stdout  # the table says so too
    scored = sorted((v for v in variants.values() if v.state == "done"), key=lambda v: v.mifid)
    assert len(scored) == 2 and all(v.n_images == 6 for v in scored)
    best = scored[0]
    trained_by = JobStore(tmp_path / "submissions").get(JobName.parse(f"sweep/trio/{best.name}"))
    submit = fake_kaggle.pushes[3]
    assert submit["kernelDataSources"] == [trained_by.ref] and submit["enableInternet"] is False
    [sub] = fake_kaggle.submissions
    assert sub["submissionDescription"].startswith(f"sweep trio: {best.name} (")
    submitted = existing(tmp_path / "submissions" / "sweeps" / "trio", "trio").user_attrs["submitted"]
    assert submitted.startswith(f"{best.name}: tester/monet-pipeline-trio-{best.name}-train-1 v")
    assert "submission(s) left today" in proc.stdout
    # the page's section has every variant, with the fixed photos the kernels kept
    page = (tmp_path / "submissions" / "leaderboard.html").read_text()
    assert page[page.index("<h2>Sweep trio</h2>"):].count('<tr class="variant"') == 3
