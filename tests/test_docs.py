"""The README and docs/: a newcomer's page stays short, every link stays in the repository (its #anchor
resolving) or goes to a public page, and what the docs say of the presets and of an epoch is what the code
does."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Config, load_config
from pipeline.notebook.preflight import PROMISED_GPUS
from pipeline.training.family import get_family

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_link_stays_in_the_repository_or_goes_to_a_public_page(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            if not target.startswith("https://"):
                broken.append(target)  # file:, http:, ...: not a public page a reader can open
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        inside = resolved.is_relative_to(REPO) and resolved.exists()
        if not inside or anchor and anchor not in anchors(resolved):
            broken.append(target)
    assert broken == [], f"{page.name}: links that are broken or leave the repository: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_no_page_points_to_a_path_outside_the_repository(page):
    assert re.findall(r"\.\./shared\S*|/work/\S*", page.read_text()) == []


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


def normalised(relative: str) -> str:
    """A page (or a preset's comments) as one line: line breaks and comment marks do not split a phrase."""
    text = (REPO / relative).read_text()
    return re.sub(r"\s+", " ", re.sub(r"^# ?", "", text, flags=re.M))


def notebook_batch(cfg: Config) -> int:
    """A preset's global batch of photos in its notebook: the family's photos a step per process x the
    processes (kernel.processes, 0: one per GPU the accelerator gives)."""
    per_process = get_family(cfg.train.model).images_per_step(cfg.train, cfg.model_settings)["photo"]
    return per_process * (cfg.kernel.processes or PROMISED_GPUS[cfg.kernel.accelerator])


def kaggle_epoch() -> tuple[int, int]:
    """(global batch, steps an epoch) of the `kaggle` preset in its notebook, counted as training/loop.py's
    load_data counts them: the photos // the global batch."""
    cfg = load_config("kaggle")
    assert cfg.train.epoch_over == "photos"
    batch = notebook_batch(cfg)
    return batch, cfg.download.expect_photos // batch


# Where the docs give the `kaggle` preset's steps an epoch: every one must say what the code counts.
EPOCH_CLAIMS = [
    ("docs/training.md", r"the `kaggle` preset's epoch \(batch 2 on each of two T4s\) is "
                         r"7,038 // (?P<batch>\d+) = (?P<steps>[\d,]+) steps"),
    ("docs/training.md", r"\(1,834 steps as the report counts them; (?P<steps>[\d,]+) here\)"),
    ("pipeline/config/presets/kaggle.toml",
     r"here 7,038 // (?P<batch>\d+) = (?P<steps>[\d,]+) steps an epoch"),
]


@pytest.mark.parametrize("relative, claim", EPOCH_CLAIMS, ids=[c[0] for c in EPOCH_CLAIMS])
def test_the_steps_an_epoch_the_docs_give_are_what_the_code_counts(relative, claim):
    batch, steps = kaggle_epoch()
    found = re.search(claim, normalised(relative))
    assert found, f"{relative} no longer says the kaggle preset's steps an epoch as {claim!r}"
    assert int(found["steps"].replace(",", "")) == steps
    if "batch" in claim:
        assert int(found["batch"]) == batch


def test_every_division_of_the_photos_in_the_docs_is_right():
    pages = [*PAGES, *sorted((REPO / "pipeline" / "config" / "presets").glob("*.toml"))]
    sums = [(int(n), int(q.replace(",", ""))) for page in pages
            for n, q in re.findall(r"7,038 // (\d+) = ([\d,]+)", normalised(str(page.relative_to(REPO))))]
    assert sums and all(q == 7038 // n for n, q in sums), sums


# What the docs say a preset sets: (page, the sentence's words, preset, {setting: value}). A page that says
# otherwise no longer holds the words; a preset that changes no longer holds the values: either fails.
TRAINING, README = "docs/training.md", "README.md"
PRESET_CLAIMS: list[tuple[str, str, str, dict[str, Any]]] = [
    (README, "the `kaggle` preset (CycleGAN with the U-Net generator)", "kaggle",
     {"train.model": "cyclegan", "cyclegan.generator": "unet"}),
    (README, "then `kaggle-cut` (CUT)", "kaggle-cut", {"train.model": "cut"}),
    (README, "`kaggle-cut`: `train.model=cut` on the `kaggle` recipe", "kaggle-cut", {"train.model": "cut"}),
    (README, "`kaggle`: batch 4 on T4 × 2, `epoch_over=photos`, up to 30 epochs", "kaggle",
     {"global batch": 4, "train.epoch_over": "photos", "train.epochs": 30}),
    (README, "`kaggle`: the U-Net generator", "kaggle", {"cyclegan.generator": "unet"}),
    (README, "`train.select_by_mifid`, off in both presets", "kaggle", {"train.select_by_mifid": 0}),
    (README, "`train.select_by_mifid`, off in both presets", "kaggle-cut", {"train.select_by_mifid": 0}),
    (README, "DiffAugment `color,translation`", "kaggle", {"train.diffaugment": "color,translation"}),
    (TRAINING, "`kaggle-cut`: the `kaggle` preset with CUT in place of CycleGAN", "kaggle-cut",
     {"train.model": "cut"}),
    (TRAINING, "`kaggle-cut`: the `kaggle` preset with CUT in place of CycleGAN", "kaggle",
     {"train.model": "cyclegan"}),
    (TRAINING, "The preset (`pipeline/config/presets/kaggle.toml`): CycleGAN with the U-Net generator, "
               "256 px, batch 2 per process on both T4s (global 4", "kaggle",
     {"train.model": "cyclegan", "cyclegan.generator": "unet", "train.image_size": 256, "train.batch_size": 2,
      "global batch": 4}),
    (TRAINING, "an epoch over the photos, up to 30 epochs planned to the notebook's clock with the decay in "
               "its second half, DiffAugment `color,translation`, EMA 0.999 for the images", "kaggle",
     {"train.epoch_over": "photos", "train.epochs": 30, "train.decay_start": 0.5,
      "train.diffaugment": "color,translation", "train.ema": 0.999}),
    (TRAINING, "`train.select_by_mifid=N` keeps the best checkpoint by MiFID (off in both presets",
     "kaggle", {"train.select_by_mifid": 0}),
    (TRAINING, "`train.select_by_mifid=N` keeps the best checkpoint by MiFID (off in both presets",
     "kaggle-cut", {"train.select_by_mifid": 0}),
    (TRAINING, "batch 4 (2 per T4 × 2), `epoch_over=photos`, 30 epochs as the most", "kaggle",
     {"train.batch_size": 2, "global batch": 4, "train.epoch_over": "photos", "train.epochs": 30}),
    (TRAINING, "with `train.model=cut` at the paper's model settings", "kaggle-cut", {"train.model": "cut"}),
    (TRAINING, "(`train.lr_scaling=sqrt`; `none` undoes it)", "kaggle-cut", {"train.lr_scaling": "sqrt"}),
    (TRAINING, "(`train.ema=0.999`; `0` undoes it)", "kaggle-cut", {"train.ema": 0.999}),
    ("docs/kaggle.md", "the `kaggle` preset sets none", "kaggle", {"train.time_budget_min": 0}),
]


def setting(cfg: Config, key: str) -> Any:
    """`section.field` of the settings (a family's section by its name), or the notebook's global batch."""
    if key == "global batch":
        return notebook_batch(cfg)
    section, field = key.split(".")
    holder = getattr(cfg.families, section) if hasattr(cfg.families, section) else getattr(cfg, section)
    return getattr(holder, field)


@pytest.mark.parametrize("relative, words, preset, values", PRESET_CLAIMS,
                         ids=[f"{c[0]}:{c[2]}:{','.join(c[3])}" for c in PRESET_CLAIMS])
def test_what_the_docs_say_of_a_preset_is_what_it_sets(relative, words, preset, values):
    assert words in normalised(relative), f"{relative} no longer says {words!r}: update the claim here too"
    cfg = load_config(preset)
    assert {key: setting(cfg, key) for key in values} == values, f"{relative}: {words!r}; the {preset} preset"
