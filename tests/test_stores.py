"""Files two commands may change at once lose no change: two processes started together each add 200
entries to the same store, and all 400 are there (unlocked, such a race kept 176 of 300 leaderboard rows)."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from pipeline.datasets.store import Upload, Uploads
from pipeline.engine import store
from pipeline.scoring import table

EACH = 200


def add_rows(path: Path, writer: str) -> None:
    for i in range(EACH):
        table.append(path, table.Row(run=f"{writer}-{i}", mifid=float(i)))


def add_uploads(folder: Path, writer: str) -> None:
    uploads = Uploads(folder)
    for i in range(EACH):
        uploads.put(f"run/{writer}-{i}", Upload(ref=f"me/{writer}-{i}", version=1, file="last.pt", step=i,
                                                digest="0" * 64, uploaded_at="2026-12-07T12:00:00Z"))


def add_entries(path: Path, writer: str) -> None:
    for i in range(EACH):
        store.update_json(path, lambda entries, i=i: [*entries, f"{writer}-{i}"], [])


def together(add, target: Path, gate) -> None:
    """`add` once every writer is started, so that the two write at the same time."""
    gate.wait()
    add(target, multiprocessing.current_process().name)


def race(add, target: Path) -> None:
    """Two processes running `add` on `target` at once; both must finish cleanly."""
    context = multiprocessing.get_context("spawn")
    gate = context.Barrier(2)
    writers = [context.Process(target=together, args=(add, target, gate), name=name) for name in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert [w.exitcode for w in writers] == [0, 0]


EVERY = sorted(f"{writer}-{i}" for writer in ("a", "b") for i in range(EACH))


@pytest.mark.slow
def test_two_commands_scoring_at_once_keep_every_leaderboard_row(tmp_path):
    path = table.csv_path(tmp_path)
    race(add_rows, path)
    assert sorted(row.run for row in table.read(path)) == EVERY


@pytest.mark.slow
def test_two_uploads_recorded_at_once_keep_every_record(tmp_path):
    race(add_uploads, tmp_path)
    uploads = Uploads(tmp_path)
    assert [uploads.get(f"run/{name}").ref for name in EVERY] == [f"me/{name}" for name in EVERY]


def test_two_writers_of_one_json_file_keep_every_change(tmp_path):
    path = tmp_path / "shared.json"
    race(add_entries, path)
    assert sorted(store.read_json(path, [])) == EVERY


@pytest.mark.parametrize("default", [[], {}])
def test_a_missing_or_unreadable_file_reads_as_the_default(tmp_path, default):
    path = tmp_path / "state.json"
    assert store.read_json(path, default) == default
    path.write_text('{"half": ')  # what no atomic writer leaves, but a copy cut short might
    assert store.update_json(path, lambda value: value or {"whole": 1}, default) == {"whole": 1}
    assert store.read_json(path, default) == {"whole": 1}
