"""The Makefile's flags read as people write them: DRY_RUN, SUBMIT, FORCE and YES are on for 1, true or yes
and off for 0, false, no or nothing, for every target that takes one; and the Kaggle targets do what they
say, run by make against the fake Kaggle."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, images_zip

VENV = Path(sys.executable).parent.parent  # the venv running the tests: make must not build another


def make(tmp_path: Path, *args: str, dry: bool = True) -> subprocess.CompletedProcess:
    """make TARGET VAR=... with the repository's Makefile, run in tmp_path (outputs land there)."""
    stamp = VENV / ".installed-stamp"
    command = ["make", "--no-print-directory", "-f", str(REPO / "Makefile"), f"VENV={VENV}", "-o", str(stamp),
               *(["-n"] if dry else []), *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("target, flag, adds", [
    ("submit", "DRY_RUN", "--set submit.dry_run=true"),
    ("train-kaggle", "DRY_RUN", "--set submit.dry_run=true"),
    ("train-kaggle", "SUBMIT", "--submit"),
    ("submit", "FORCE", "--force"),
    ("train", "FORCE", "--force"),
    ("submit", "YES", "--yes"),
    ("sweep", "YES", "--yes"),
    ("search", "SUBMIT", "--submit"),
    ("search", "YES", "--yes"),
])
def test_a_flag_is_on_for_1_true_yes_and_off_for_0_false_no_or_nothing(tmp_path, target, flag, adds):
    extra = {"sweep": ["SWEEP=demo"], "search": ["SEARCH=demo"]}.get(target, [])
    for value in ("1", "true", "yes", "TRUE"):
        proc = make(tmp_path, target, f"{flag}={value}", *extra)
        assert proc.returncode == 0 and adds in proc.stdout, (value, proc.stdout, proc.stderr)
    for value in ("0", "false", "no", ""):
        proc = make(tmp_path, target, f"{flag}={value}", *extra)
        assert proc.returncode == 0 and adds not in proc.stdout, (value, proc.stdout)
    proc = make(tmp_path, target, f"{flag}=maybe", *extra)
    assert proc.returncode != 0 and f"{flag}=maybe: use 1, true or yes (on), or 0, false, no or nothing" \
        in proc.stderr


def test_make_bench_forwards_config_set_yes_and_its_own_flags(tmp_path):
    proc = make(tmp_path, "bench", "YES=1", "CONFIG=demo", "SET=train.epochs=1 score.limit=3",
                "ONLY=train,score", "DATA=photos", "FULL=1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[1:] == ["-m", "pipeline", "bench", "--config", "demo", "--set",
                                       "train.epochs=1", "--set", "score.limit=3", "--yes", "--only",
                                       "train,score", "--data", "photos", "--full"]
    assert make(tmp_path, "bench").stdout.split()[1:] == ["-m", "pipeline", "bench", "--config", "default"]


def test_make_bench_refuses_args_which_would_drop_config_and_set(tmp_path):
    proc = make(tmp_path, "bench", "CONFIG=demo", "ARGS=--only train")
    assert proc.returncode != 0
    assert "make bench: ARGS= would replace CONFIG=, SET= and YES=; use ONLY=parts" in proc.stderr


SCRIPTED = ("zip.min_images=3 zip.max_images=10 zip.image_size=32 generate.count=5 "
            "submit.poll_interval_s=0.01 submit.retry_delay_s=0 submit.wait_score_min=0")


def local(tmp_path: Path) -> str:
    return f"paths.data={tmp_path / 'data'} paths.submissions={tmp_path / 'submissions'}"


@pytest.mark.slow
def test_train_kaggle_with_submit_0_trains_and_submits_nothing(tmp_path, fake_kaggle):
    proc = make(tmp_path, "train-kaggle", "SESSIONS=2", "SUBMIT=0", "CONFIG=demo",
                f"SET={local(tmp_path)} {SCRIPTED}", dry=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [p["slug"] for p in fake_kaggle.pushes] == ["tester/monet-pipeline-train-1",
                                                       "tester/monet-pipeline-train-2"]
    assert fake_kaggle.submissions == [] and "submit it with: make submit" in proc.stdout


@pytest.mark.slow
def test_submit_with_dry_run_0_submits(tmp_path, fake_kaggle):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    proc = make(tmp_path, "submit", "DRY_RUN=0", "CONFIG=demo", f"SET={local(tmp_path)} {SCRIPTED}",
                dry=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [s["kernelVersion"] for s in fake_kaggle.submissions] == [1]


def test_make_search_dashboard_opens_the_searchs_own_journal(tmp_path):
    proc = make(tmp_path, "search-dashboard", "SEARCH=demo", "CONFIG=demo", "SET=paths.submissions=/x")
    assert proc.returncode == 0, proc.stderr
    [line] = [line for line in proc.stdout.splitlines() if line.startswith(f"{VENV}/bin/optuna-dashboard")]
    assert line.split() == [f"{VENV}/bin/optuna-dashboard", f'"$({VENV}/bin/python', "-m", "pipeline",
                            "search", "demo", "--config", "demo", "--set", "paths.submissions=/x",
                            '--journal)"']
    journal = subprocess.run([str(VENV / "bin" / "python"), "-m", "pipeline", "search", "demo", "--config",
                              "demo", "--set", f"paths.submissions={tmp_path}", "--journal"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert journal == str(tmp_path / "search" / "demo" / "journal.log")
