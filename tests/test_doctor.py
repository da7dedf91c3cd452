"""`python -m pipeline doctor` through the real `kaggle` client against the local fake Kaggle: one table, and
for each row that is not fine one line saying what to do."""
from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.cli import main

WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"


@pytest.fixture(autouse=True)
def weights_on_kaggle(fake_kaggle):
    """The fake Kaggle (conftest.py: the working folder is tmp_path) with a dataset of the FID weights."""
    fake_kaggle.dataset_files["tester/fid-weights"] = ["README.md", WEIGHTS]


def doctor(capsys, *sets: str) -> tuple[int, str]:
    argv = ["doctor", "--set", "kernel.weights_dataset=tester/fid-weights"]
    for item in sets:
        argv += ["--set", item]
    code = main(argv)
    return code, capsys.readouterr().out


def todo(out: str) -> list[str]:
    """The what-to-do lines of the table."""
    return [line.strip() for line in out.splitlines() if line.strip().startswith("-> ")]


def row(out: str, check: str) -> list[str]:
    """A row's cells: check, state, found."""
    line = next(line for line in out.splitlines() if line.startswith(check + "  "))
    return [line[:len(check)], *line[len(check):].split(maxsplit=1)]


def test_all_fine_is_one_table_and_exit_0(fake_kaggle, tmp_path, capsys):
    code, out = doctor(capsys)
    assert code == 0 and out.rstrip().endswith("doctor: all fine") and todo(out) == []
    kaggle_json = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    assert row(out, "credentials") == ["credentials", "ok", f"tester, from {kaggle_json}"]
    assert row(out, "kaggle client")[2].startswith("kaggle 2.2.5, kagglesdk 0.1.38 (needs kaggle")
    assert row(out, "competition")[1:] == ["ok", "gan-getting-started: joined, rules accepted"]
    # "within the hour" from 23:00 UTC on: this test must pass whatever the time of day
    assert re.fullmatch(r"5 of 5 left; the day resets at 00:00 UTC \((in \d+ h|within the hour)\)",
                        row(out, "submissions today")[2])
    assert row(out, "GPU quota")[2].startswith("10.0 h used, 0.0 h held by running sessions, 20.0 h left of "
                                               "30 h; resets ")
    assert row(out, "competition data")[1:] == ["ok", "monet_jpg 300, monet_tfrec 5, photo_jpg 7,038, "
                                                      "photo_tfrec 20"]
    assert row(out, "weights dataset")[1:] == ["ok", f"tester/fid-weights: visible, holds {WEIGHTS}"]
    assert fake_kaggle.pushes == [] and fake_kaggle.submissions == []
    assert list(tmp_path.glob("*")) == [tmp_path / "home"]  # read only: nothing written here either


def test_rules_not_accepted_is_one_line_saying_where_to_accept_them(fake_kaggle, capsys):
    fake_kaggle.rules_accepted = False
    code, out = doctor(capsys)
    assert code == 1
    assert todo(out) == ["-> accept the rules at https://www.kaggle.com/competitions/gan-getting-started/"
                         "rules, then run make doctor again"]
    assert row(out, "competition")[1:] == ["FIX", "gan-getting-started: not joined, its rules not accepted"]
    assert row(out, "submissions today")[1:] == ["-", "5 a day, once you have joined"]
    assert out.rstrip().endswith("doctor: 1 to fix: competition")


def test_a_spent_gpu_quota_is_one_line_saying_when_it_resets(fake_kaggle, capsys):
    refresh = datetime.now(timezone.utc) + timedelta(days=2, hours=1)
    fake_kaggle.quota = (30.0, 30.0, refresh.strftime("%Y-%m-%dT%H:%M:%SZ"))
    code, out = doctor(capsys)
    assert code == 1
    assert todo(out) == [f"-> no GPU hours left: wait until the quota resets in 2 days "
                         f"({refresh:%Y-%m-%d %H:%M} UTC)"]
    assert row(out, "GPU quota")[1] == "FIX" and out.rstrip().endswith("doctor: 1 to fix: GPU quota")


def test_hours_left_that_cannot_cover_the_kernel_name_the_setting(fake_kaggle, capsys):
    fake_kaggle.quota = (27.0, 30.0, "2026-12-06T00:00:00Z")
    code, out = doctor(capsys, "kernel.time_limit_min=240")
    assert code == 1
    assert todo(out)[0].startswith("-> the kernel may run up to 4 h: lower kernel.time_limit_min to fit "
                                   "3.0 h, or wait until the quota resets")


def test_no_submission_left_today_and_a_weights_dataset_out_of_sight(fake_kaggle, capsys):
    fake_kaggle.submissions += [{}] * 5
    code, out = doctor(capsys, "kernel.weights_dataset=someone/private-weights")
    assert code == 1
    assert row(out, "submissions today")[2].startswith("none left (5 of 5 made); the day resets at 00:00 UTC")
    assert row(out, "weights dataset")[1:] == ["FIX", "someone/private-weights: not visible to tester"]
    assert len(todo(out)) == 2
    assert out.rstrip().endswith("doctor: 2 to fix: submissions today, weights dataset")


def test_without_credentials_the_first_row_says_where_to_put_them(fake_kaggle, capsys):
    (Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json").unlink()
    code, out = doctor(capsys)
    assert code == 1 and row(out, "credentials")[1] == "FIX"
    assert todo(out) == [next(line.strip() for line in out.splitlines() if "no Kaggle credentials" in line)]
    assert row(out, "GPU quota")[1:] == ["-", "needs credentials"]
    assert fake_kaggle.calls == []  # nothing was asked of Kaggle
