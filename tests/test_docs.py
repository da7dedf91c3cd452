"""The README and docs/: a newcomer's page stays short, and every relative link (and its #anchor) resolves."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or anchor and anchor not in anchors(resolved):
            broken.append(target)
    assert broken == [], f"{page.name}: broken links {broken}"


def test_the_readme_is_a_five_minute_read_with_the_quick_start_near_the_top():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert text.index("make submit DRY_RUN=1") < len(text) // 3
    for page in ("kaggle", "training", "scoring", "benchmarks", "troubleshooting", "architecture"):
        assert f"docs/{page}.md" in text


def test_the_docs_speak_of_the_product_not_of_how_it_was_made():
    found = [f"{p.name}: {m}" for p in PAGES
             for m in re.findall(r"[^.]*\b(?:was lent|this session|no GPU was lent|during development)[^.]*",
                                 p.read_text())]
    assert found == []
