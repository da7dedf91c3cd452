"""Cost before spend (pipeline/account/cost.py): every command that starts GPU time on Kaggle says first what
runs, the GPU-hours it can use, the quota left after it and the submissions left today; on a terminal it asks
when that is more than an hour, and without one it never blocks."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from helpers import cli

from pipeline.cli import main

SCRIPTED = ("zip.min_images=3", "zip.max_images=10", "zip.image_size=32", "generate.count=5",
            "submit.poll_interval_s=0.01", "submit.retry_delay_s=0")


def cost_line(out: str, command: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith(f"{command}: ") and "-hours" in line]
    return line


def test_submit_says_what_it_can_spend_before_it_pushes(tmp_path, fake_kaggle, capsys):
    refresh = datetime.now(timezone.utc) + timedelta(days=2, hours=1)
    fake_kaggle.quota = (10.0, 30.0, refresh.strftime("%Y-%m-%dT%H:%M:%SZ"))
    main(cli(tmp_path, "submit", *SCRIPTED, "submit.dry_run=true"))
    out = capsys.readouterr().out
    line = cost_line(out, "submit")
    assert line == ("submit: the kaggle preset (cyclegan) in the submission notebook; up to 5 GPU-hours of "
                    "the 20.0 h left (15.0 h after it; the quota refreshes in 2 days); 5 submission(s) "
                    "left today; DRY_RUN: a full run on Kaggle that does not submit")
    assert out.index(line) < out.index("pushed the submission notebook")


def test_train_kaggle_counts_every_session_and_the_submission(tmp_path, fake_kaggle, capsys):
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=2", "kernel.train_limit_min=120")) \
        == 0
    out = capsys.readouterr().out
    line = cost_line(out, "train-kaggle")
    assert "trained over 2 session(s), 2 still to run; up to 4 GPU-hours" in line
    assert out.index(line) < out.index("pushed session 1 of 2")
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=2", "kernel.train_limit_min=120")) \
        == 0
    assert "GPU-hours" not in capsys.readouterr().out  # nothing left to push: nothing to announce


def test_a_kaggle_sweep_counts_its_queued_variants(tmp_path, fake_kaggle, capsys):
    sweep = tmp_path / "pair.toml"
    sweep.write_text('preset = "kaggle"\nset = ["sweep.backend=kaggle"]\n[[variant]]\nname = "wide"\n'
                     'set = ["cyclegan.ngf=8"]\n')
    assert main(["sweep", str(sweep), *cli(tmp_path, "sweep")[1:], "--set", "kernel.train_limit_min=60",
                 *[arg for s in SCRIPTED for arg in ("--set", s)]]) == 0
    out = capsys.readouterr().out
    line = cost_line(out, "sweep")
    assert line.startswith("sweep: sweep pair: 2 variant(s) of the kaggle preset to train, 2 at once; up to "
                           "2 GPU-hours")
    assert out.index(line) < out.index("pushed variant base")


def test_on_a_terminal_it_asks_and_no_pushes_nothing(tmp_path, fake_kaggle):
    """`make submit` under a pseudo-terminal, answered "n": nothing reaches Kaggle."""
    main_fd, tty = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *cli(tmp_path, "submit", *SCRIPTED)],
                            stdin=tty, stdout=tty, stderr=tty, cwd=tmp_path, env=os.environ.copy())
    os.close(tty)
    seen, deadline = b"", time.monotonic() + 120
    while b"push it? [y/N]" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += os.read(main_fd, 4096)
    os.write(main_fd, b"n\n")
    assert proc.wait(timeout=60) == 2
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(main_fd)
    assert b"nothing pushed (answered 'n'); YES=1 (--yes) answers yes" in seen, seen.decode()[-2000:]
    assert fake_kaggle.pushes == []


def test_without_a_terminal_it_never_asks(tmp_path, fake_kaggle):
    proc = subprocess.run([sys.executable, "-m", "pipeline", *cli(tmp_path, "push", *SCRIPTED)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "push it?" not in proc.stdout and len(fake_kaggle.pushes) == 1
