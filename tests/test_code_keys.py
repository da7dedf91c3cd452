"""A stage's key follows the meaning of the code it runs: comments and docstrings change no key, a real change
re-runs the stages that import it and no others (the table in docs/architecture.md, checked here)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import tiny_config

from pipeline.engine import keys
from pipeline.engine.keys import PACKAGE_ROOT
from pipeline.stages import STAGES

REPO = PACKAGE_ROOT.parent
DATA_STAGES = ("download", "augment", "train", "generate", "score", "zip")
TABLE = re.compile(r"<!-- code-keys -->\n(.*?)<!-- /code-keys -->", re.S)


@pytest.fixture
def package(tmp_path, monkeypatch) -> Path:
    """A copy of the pipeline package to edit, the one the keys are read from."""
    copy = tmp_path / "code" / "pipeline"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(keys, "PACKAGE_ROOT", copy)
    return copy


def code_keys(package: Path) -> dict[str, str]:
    """Each data stage's code key, read from the copy `package` (the one the fixture points the keys at)."""
    assert keys.PACKAGE_ROOT == package
    cfg = tiny_config(Path("/nonexistent"))
    return {name: STAGES[name].code_key(cfg) for name in DATA_STAGES}


def edit(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


def rerun_by(package: Path, module: str, before: dict[str, str] | None = None) -> list[str]:
    """The data stages whose key a real change to `module` (a path in the package) changes (`before`: the
    keys of the unchanged package, where the caller has them already)."""
    before = before or code_keys(package)
    edit(package / module, "\n_EDITED = True\n")
    after = code_keys(package)
    (package / module).write_text((PACKAGE_ROOT / module).read_text())
    return [name for name in DATA_STAGES if before[name] != after[name]]


def docs_table() -> dict[str, list[str]]:
    """docs/architecture.md's table: the module edited -> the data stages it re-runs."""
    rows = TABLE.search((REPO / "docs" / "architecture.md").read_text()).group(1).strip().splitlines()[2:]
    table = {}
    for row in rows:
        module, stages = (cell.strip() for cell in row.strip("|").split("|")[:2])
        table[module.strip("`")] = [] if stages == "none" else [s.strip() for s in stages.split(",")]
    return table


@pytest.mark.slow
def test_a_comment_a_docstring_or_a_reformat_changes_no_key(package):
    before = code_keys(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        edit(path, "\n# a comment added to every module\n")
        if text.startswith('"""'):  # a module docstring rewritten
            path.write_text('"""Said otherwise."""' + text[text.index('"""', 3) + 3:] + "\n\n\n")
    assert code_keys(package) == before


@pytest.mark.slow
def test_a_real_change_reruns_the_stages_that_import_it(package):
    assert rerun_by(package, "training/loop.py") == ["train"]
    assert rerun_by(package, "generate/render.py") == ["generate"]
    assert set(rerun_by(package, "config/sections.py")) == set(DATA_STAGES)


@pytest.mark.slow
def test_the_docs_table_is_what_an_edit_of_each_package_reruns(package):
    table = docs_table()
    top = {p.name.removesuffix(".py") for p in PACKAGE_ROOT.iterdir()
           if p.name != "__pycache__" and (p.is_dir() or p.suffix == ".py") and p.name != "__init__.py"}
    assert {m.split("/")[0].removesuffix(".py") for m in table} == top, "one row per package"
    unchanged = code_keys(package)  # every edit is undone before the next: one reading of the keys serves all
    assert {module: rerun_by(package, module, unchanged) for module in table} == table
    assert table["leaderboard/page.py"] == [] and table["jobs/submit.py"] == []
