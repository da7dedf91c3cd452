"""The score bench reads each command's feature-loop time from its progress output: the parsers against the
formats the two tools really print (the bench itself takes ~20 minutes and is not run here)."""
from __future__ import annotations

import io

import pytest
from tqdm import tqdm

from pipeline.bench.score import _our_extraction_seconds, _tqdm_seconds
from pipeline.engine import progress
from pipeline.engine.progress import LineProgress


def test_our_summary_line_gives_the_bars_seconds(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress, "monotonic", lambda: now[0])
    out = io.StringIO()
    with LineProgress(1200, "real features", "img", every_s=60.0, file=out) as bar:
        now[0] += 12.0
        bar.update(1200)
    log = f"noise\nscore: img 5/5 (100%) in 0s, 9.0 img/s\n{out.getvalue()}"
    assert _our_extraction_seconds(log, "real features") == pytest.approx(12.0)
    with pytest.raises(RuntimeError, match="no 'score' summary"):
        _our_extraction_seconds(out.getvalue(), "score")


def test_pytorch_fids_tqdm_bars_give_their_summed_seconds():
    log = io.StringIO()
    for n in (3, 2):  # generated, then real: two bars, as pytorch-fid's command draws them
        for _ in tqdm(range(n), file=log, mininterval=0):
            pass
    # a long bar: its last state drawn twice (last update, then close), counted once
    last = "\r100%|##########| 2/2 [1:02:05<00:00, 3.0s/it]"
    log.write(f"\r  0%|          | 0/2 [00:00<?, ?it/s]\r 50%|#####     | 1/2 [1:02:03<1:02:03,  3.1s/it]"
              f"{last}{last}\n")
    for drawn in (log.getvalue(), log.getvalue().replace("\r", "\n")):  # as written; as text=True reads it
        assert _tqdm_seconds(drawn) == 3725.0  # the two fast bars count 0 s each
    with pytest.raises(RuntimeError, match="no finished progress bar"):
        _tqdm_seconds("  0%|          | 0/2 [00:00<?, ?it/s] 50%|#####     | 1/2 [00:03<00:03,  3.1s/it]")
