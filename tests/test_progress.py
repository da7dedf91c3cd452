"""Progress off a terminal: a plain flushed line every hardware.progress_every_s (never tqdm's \\r redraws),
with position, rate, ETA and the caller's last postfix; tqdm bars on a terminal as before."""
from __future__ import annotations

import io
import re
import sys

import pytest
from helpers import TINY, make_data, tiny_config
from tqdm import tqdm

from pipeline.engine import progress as progress_module
from pipeline.engine.progress import LineProgress, Pace, progress, track
from pipeline.training import loop as train
from pipeline.training.log import read_csv


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_come_at_most_once_per_every_s_and_say_where_the_work_stands(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", clock)
    with progress(2000, "train epoch 3/30", "step", every_s=60) as bar:
        assert isinstance(bar, LineProgress)  # capsys's stderr is no terminal
        for step in range(1, 2001):
            clock.now += 0.25  # 4 steps/s: 500 s in all
            bar.update()
            if step == 100:  # what the train loop does at a log boundary; the bar only keeps it
                bar.set_postfix({"loss_G": "1.234", "loss_D": "0.456"}, refresh=False)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and "\r" not in err
    assert len(lines) == 8 + 1  # at 60, 120, ..., 480 s, then the summary
    assert lines[0] == ("train epoch 3/30: step 240/2,000 (12%), 4.0 step/s, ETA 7m20s, "
                        "loss_G=1.234 loss_D=0.456")
    assert lines[1].startswith("train epoch 3/30: step 480/2,000 (24%), 4.0 step/s, ETA 6m20s, loss_G=1.234")
    assert lines[-1] == ("train epoch 3/30: step 2,000/2,000 (100%) in 8m20s, 4.0 step/s, "
                         "loss_G=1.234 loss_D=0.456")


def test_a_burst_of_updates_prints_nothing_until_every_s_has_passed(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", clock)
    bar = progress(None, "checking images", "img", every_s=30, initial=0)
    for _ in range(10_000):
        bar.update()
    assert capsys.readouterr().err == ""
    clock.now += 29.9
    bar.update(5)
    assert capsys.readouterr().err == ""
    clock.now += 0.1
    bar.update()
    assert capsys.readouterr().err == "checking images: img 10,006, 333.5 img/s\n"
    clock.now += 7200
    bar.update()
    bar.close()
    bar.close()  # once only
    assert capsys.readouterr().err.splitlines() == ["checking images: img 10,007, 1.4 img/s",
                                                    "checking images: img 10,007 in 2h00m, 1.4 img/s"]


def test_a_resumed_bar_counts_its_rate_from_where_it_started_and_slow_work_reads_in_s(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", clock)
    with progress(100, "epoch 2/2", "step", every_s=60, initial=90) as bar:
        clock.now += 60
        bar.update(3)  # 3 steps in 60 s, from step 90
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["epoch 2/2: step 93/100 (93%), 20.0 s/step, ETA 2m20s",
                     "epoch 2/2: step 93/100 (93%) in 1m00s, 20.0 s/step"]


def test_nothing_done_or_disabled_prints_nothing_and_write_prints_at_once(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", clock)
    with progress(10, "idle", "img", every_s=1):
        clock.now += 100
    with progress(10, "other rank", "step", every_s=1, disable=True) as bar:
        for _ in range(10):
            clock.now += 100
            bar.update()
    assert capsys.readouterr() == ("", "")
    with progress(10, "epoch 1/1", "step", every_s=1) as bar:
        bar.write("step 5: MiFID 80.00 (best 80.00, saved best.pt)")
        # at once, not at close
        assert capsys.readouterr().out == "step 5: MiFID 80.00 (best 80.00, saved best.pt)\n"


def test_track_counts_what_it_yields(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", clock)

    def slow(n):
        for i in range(n):
            clock.now += 1
            yield i

    assert sum(track(slow(100), 100, "augmenting", "painting", every_s=45)) == sum(range(100))
    assert capsys.readouterr().err.splitlines() == [
        "augmenting: painting 45/100 (45%), 1.0 painting/s, ETA 55s",
        "augmenting: painting 90/100 (90%), 1.0 painting/s, ETA 10s",
        "augmenting: painting 100/100 (100%) in 1m40s, 1.0 painting/s"]


def test_a_terminal_gets_tqdm_bars_the_choice_made_per_bar(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress(3, "generate", "img", every_s=60) as bar:
        assert isinstance(bar, tqdm)
        bar.update(3)
    assert list(track(range(3), 3, "zip: writing", "img", every_s=60)) == [0, 1, 2]
    assert "\r" in terminal.getvalue() and "zip: writing" in terminal.getvalue()  # tqdm drew both
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe: the next bar is lines
    with progress(3, "generate", "img", every_s=60) as bar:
        assert isinstance(bar, LineProgress)


def test_bars_sharing_a_pace_print_one_line_per_every_s_together(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", clock)
    pace = Pace()
    for epoch in range(1, 31):  # 30 epochs of 4 steps, 1 s a step: 120 s
        with progress(4, f"epoch {epoch}/30", "step", every_s=50, pace=pace) as bar:
            for _ in range(4):
                clock.now += 1
                bar.update()
    lines = capsys.readouterr().err.splitlines()
    # A line at 50 s, its epoch's summary at 52 s, the next line 50 s later; the other epochs say nothing.
    assert lines == ["epoch 13/30: step 2/4 (50%), 1.0 step/s, ETA 2s",
                     "epoch 13/30: step 4/4 (100%) in 4s, 1.0 step/s",
                     "epoch 26/30: step 2/4 (50%), 1.0 step/s, ETA 2s",
                     "epoch 26/30: step 4/4 (100%) in 4s, 1.0 step/s"]
    with progress(4, "alone", "step", every_s=50) as bar:  # no shared pace: its summary whatever came before
        bar.update()
    assert capsys.readouterr().err == "alone: step 1/4 (25%) in 0s, ? step/s\n"


def test_a_training_run_off_a_terminal_writes_a_few_plain_lines(tmp_path, capsys):
    make_data(tmp_path)
    cfg = tiny_config(tmp_path, *TINY, "train.epochs=3", "hardware.progress_every_s=3600")
    capsys.readouterr()
    train.build(cfg, cfg.run_dir)
    out, err = capsys.readouterr()
    assert "\r" not in out + err
    assert len(err.encode()) < 2_000, err
    lines = [line for line in err.splitlines() if line.strip()]
    # The epochs are short: they print nothing before a line is due.
    assert [line.split(":")[0] for line in lines] == ["loading monet", "loading photo"], err
    assert lines[0].startswith("loading monet: img 8/8 (100%) in 0s, ")


@pytest.mark.slow
def test_short_epochs_do_not_print_a_line_each(tmp_path, capsys, monkeypatch):
    clock = FakeClock()

    def tick() -> float:  # one second passes at every look at the clock: a slow run of short epochs
        clock.now += 1
        return clock.now

    monkeypatch.setattr(progress_module, "monotonic", tick)
    make_data(tmp_path)
    cfg = tiny_config(tmp_path, *TINY, "train.epochs=30", "train.log_every=4", "train.sample_every=1000",
                      "train.checkpoint_every=1000", "hardware.progress_every_s=20")
    capsys.readouterr()
    train.build(cfg, cfg.run_dir)
    err = capsys.readouterr().err
    epochs = [line for line in err.splitlines() if line.startswith("epoch ")]
    # 120 steps, ~180 clock seconds: ~9 lines and their epochs' summaries, not one per epoch.
    assert 6 <= len(epochs) <= 18, err
    # From the first log row on, every line shows the latest losses, also early in an epoch that has none yet.
    assert "\r" not in err and all("G_adv=" in line for line in epochs[1:]), epochs
    assert any(re.search(r"step [123]/4 .*G_adv=", line) for line in epochs), epochs


def test_training_lines_show_rate_eta_and_the_last_logged_losses(tmp_path, capsys):
    make_data(tmp_path)
    cfg = tiny_config(tmp_path, *TINY, "train.log_every=2", "hardware.progress_every_s=1e-9")  # a line a step
    capsys.readouterr()
    train.build(cfg, cfg.run_dir)
    err = capsys.readouterr().err
    steps = [line for line in err.splitlines() if line.startswith("epoch 1/1: step ") and "ETA" in line]
    assert len(steps) >= 3, err
    assert "=" not in steps[0]  # step 1: nothing logged yet
    losses = read_csv(cfg.run_dir / "losses.csv")
    logged = {k: f"{float(v):.3f}" for k, v in losses[0].items()
              if k not in ("step", "epoch", "seconds", "lr")}
    # Step 3's line shows the means logged at step 2, as the loop set them: no fresher values, no extra sync.
    third = next(line for line in steps if line.startswith("epoch 1/1: step 3/4"))
    assert re.search(r"step 3/4 \(75%\), [\d.]+ (step/s|s/step), ETA \d+s, ", third), third
    assert third.endswith(", " + " ".join(f"{k}={v}" for k, v in logged.items())), (third, logged)
