"""The score bench reads each command's feature-loop time from its progress output: the parsers against the
formats the two tools really print; its FID check's fallback on pytorch-fid's statistics; and the command
under the one CLI writing its report for the parts asked (the whole bench takes ~20 minutes and is not run
here)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from helpers import make_jpegs
from tqdm import tqdm

from pipeline.bench.score import PytorchFid, our_extraction_seconds, tqdm_seconds
from pipeline.bench.search import bench_search
from pipeline.cli import main
from pipeline.engine import progress
from pipeline.engine.progress import LineProgress
from pipeline.metrics.features import InceptionFeatures, open_images
from pipeline.metrics.mifid import fid_from_features


def test_our_summary_line_gives_the_bars_seconds(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress, "monotonic", lambda: now[0])
    out = io.StringIO()
    with LineProgress(1200, "real features", "img", every_s=60.0, file=out) as bar:
        now[0] += 12.0
        bar.update(1200)
    log = f"noise\nscore: img 5/5 (100%) in 0s, 9.0 img/s\n{out.getvalue()}"
    assert our_extraction_seconds(log, "real features") == pytest.approx(12.0)
    with pytest.raises(RuntimeError, match="no 'score' summary"):
        our_extraction_seconds(out.getvalue(), "score")


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
        assert tqdm_seconds(drawn) == 3725.0  # the two fast bars count 0 s each
    with pytest.raises(RuntimeError, match="no finished progress bar"):
        tqdm_seconds("  0%|          | 0/2 [00:00<?, ?it/s] 50%|#####     | 1/2 [00:03<00:03,  3.1s/it]")


@pytest.mark.slow
def test_where_pytorch_fids_sqrtm_refuses_its_own_statistics_check_our_fid(inception_weights, tmp_path):
    """The full bench's FID check at 7,000 vs 300 when pytorch-fid's command stops on a complex root: its
    --save-stats of the generated set, through our Fréchet formula against the real set's statistics, equal
    our FID of the same files (the real set's statistics here are ours, in its .npz format: one pytorch-fid
    process rather than two)."""
    gen, real = tmp_path / "gen", tmp_path / "real"
    make_jpegs(gen, 6, size=32, seed=0)
    make_jpegs(real, 5, size=32, seed=1)
    extractor = InceptionFeatures(inception_weights, progress=False)
    with open_images(gen) as g, open_images(real) as r:
        gen_features, real_features = extractor.of_set(g), extractor.of_set(r)
    real_stats = tmp_path / "real-stats.npz"
    np.savez(real_stats, mu=real_features.mean(axis=0), sigma=np.cov(real_features, rowvar=False))
    theirs = PytorchFid(inception_weights, "cpu", 8, tmp_path / "runs")
    checked = theirs.from_stats(gen, real_stats, "pytorch-fid stopped: complex")
    ours = fid_from_features(gen_features, real_features)
    assert checked.fid == pytest.approx(ours, rel=1e-4) and ours > 0
    assert checked.note.startswith("pytorch-fid stopped: complex; its --save-stats of both sets")


@pytest.mark.slow
def test_the_bench_command_writes_its_report_for_the_parts_asked(tmp_path, capsys):
    """`python -m pipeline bench --only generate`: the generate table alone, in bench.md and bench.json under
    the settings' submissions folder, headed by the preset and the --set items it ran with."""
    sets = [f'paths.submissions="{tmp_path / "sub"}"', "cyclegan.ngf=4", "hardware.device=cpu"]
    assert main(["bench", "--config", "demo", "--only", "generate", "--yes",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    markdown = (tmp_path / "sub" / "bench" / "bench.md").read_text()
    assert "preset `demo`" in markdown and "## Generate: 8 photos -> JPEGs on disk" in markdown
    assert "## Train" not in markdown and "## Score" not in markdown and "make demo" not in markdown
    report = json.loads((tmp_path / "sub" / "bench" / "bench.json").read_text())
    assert report["config"] == "demo" and report["sets"] == sets and set(report) >= {"generate", "device"}
    assert [r["row"] for r in report["generate"]][0].startswith("end to end")
    assert markdown in capsys.readouterr().out


def test_the_search_row_runs_the_search_and_the_full_grid_on_two_seeds(tmp_path):
    """The search row on 2 seeds of synthetic learning curves: per seed the rank correlation it prints and
    each side's GPU-hours; the search spends successive halving's shape through its own scheduler (27 x 1 h,
    the best 9 x 3 h more, the best 3 x 9 h more), the grid 27 x 13 h, and the search holds a trial within 2%
    of the grid's best on both seeds."""
    rows = bench_search(tmp_path, seeds=2)
    assert [r["seed"] for r in rows] == [0, 1, "all 2"]
    for row in rows[:2]:
        assert row["search_h"] == 27 * 1 + 9 * 3 + 3 * 9 and row["grid_h"] == 27 * 13
        assert -1 <= row["spearman"] <= 1
        assert row["grid_best"] <= row["search_best"] <= 1.02 * row["grid_best"]
        assert row["found"] == "yes" and row["search_hit_h"] <= row["search_h"] and row["grid_hit_h"] <= 351
    assert rows[2]["found"] == "2 of 2 within half the grid's GPU-h" and rows[2]["search_hit_h"] <= 81
