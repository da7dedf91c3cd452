"""The pipeline at a glance: every stage, what it reads, what settings decide it, and what it writes.

download -> augment -> train -> generate -> score -> zip, then kernel / push / submit for Kaggle.
Build functions are named as "module:function" and imported only when a stage must run.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..data.sources import dir_source
from ..generate import provenance
from .stage import Stage, code_hash

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the pipeline package


def _download_inputs(cfg: Config) -> list[Path]:
    # Only the two JPEG folders (a Kaggle input also holds TFRecords); a missing one is left to the
    # stage, whose error names the folder and the setting.
    folder = dir_source(cfg)
    return [p for p in (folder / "monet_jpg", folder / "photo_jpg") if p.is_dir()] if folder else []


def _train_inputs(cfg: Config) -> list[Path]:
    return ([cfg.bank_dir(bank) for bank in cfg.family.banks(cfg.train, cfg.model_settings)]
            + cfg.family.extra_inputs(cfg))


def _train_settings(cfg: Config) -> dict:
    # The family's modules are found by the registry, not by an import the stage's code hash can follow:
    # their own hash goes into the key instead.
    return {"train": cfg.train, cfg.train.model: cfg.model_settings,
            "family_code": _family_code(cfg, trainer=True)}


def _generate_inputs(cfg: Config) -> list[Path]:
    inputs = [cfg.checkpoint_path]
    if cfg.family.takes_photos:
        inputs.append(cfg.bank_dir("photo"))
    if cfg.generate.max_memorization > 0:
        inputs.append(cfg.raw_dir / "monet_jpg")
    return inputs


def _generate_settings(cfg: Config) -> dict:
    return {"generate": cfg.generate, "model": cfg.train.model, "score": cfg.score,
            "family_code": _family_code(cfg, trainer=False)}


def _score_inputs(cfg: Config) -> list[Path]:
    # the training paintings are read either way: the reference, or what is left out of score.real
    return [cfg.images_dir, cfg.raw_dir / "monet_jpg"] + ([Path(cfg.score.real)] if cfg.score.real else [])


def _family_code(cfg: Config, trainer: bool) -> list[str]:
    """Hashes of the family's generator module (and with trainer=True its trainer's): what a stage's key
    covers."""
    modules = cfg.family.heavy_modules()
    return [code_hash(m) for m in (modules if trainer else modules[:1])]


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("download",
          "fetch the competition images (Kaggle, a folder, or the offline demo set) into data/raw",
          build="pipeline.data.download:build", output=lambda c: c.raw_dir,
          inputs=_download_inputs,
          settings=lambda c: c.download),
    Stage("augment", "300 Monets -> 1,500: each painting plus 4 augmented variants, and a contact sheet",
          build="pipeline.data.augment:build", output=lambda c: c.augmented_dir,
          inputs=lambda c: [c.raw_dir / "monet_jpg"], settings=lambda c: c.augment),
    Stage("train", "train the model family train.model names into data/runs/<run> (resumable; samples, "
          "loss plot)", build="pipeline.training.loop:build", output=lambda c: c.run_dir,
          inputs=_train_inputs,
          settings=_train_settings, atomic=False),
    Stage("generate", "turn photos (CycleGAN) or noise (DCGAN) into Monet-style JPEGs in submissions/images",
          build="pipeline.generate.render:build", output=lambda c: c.images_dir, inputs=_generate_inputs,
          settings=_generate_settings),
    Stage("score",
          "local MiFID of submissions/images against the Monets; appends to submissions/leaderboard.csv",
          build="pipeline.metrics.score:build", output=lambda c: c.submissions_dir / "score.json",
          inputs=_score_inputs, settings=lambda c: c.score),
    Stage("zip", "validate submissions/images and write submissions/images.zip (7,000-10,000 JPEGs)",
          build="pipeline.submission.archive:build", output=lambda c: c.zip_path,
          inputs=lambda c: [c.images_dir],
          # the provenance record is hidden (not in the folder's fingerprint) but rides in the zip's comment
          settings=lambda c: {"zip": c.zip, "provenance": provenance.read_text(c.images_dir)}),
    Stage("kernel", "build the Kaggle notebook kernel that runs this pipeline on Kaggle, in kernels/<slug>",
          build="pipeline.kaggle.kernel:build", output=lambda c: Path("kernels") / c.kernel.slug,
          inputs=lambda c: [PACKAGE_DIR],
          settings=lambda c: {"kernel": c.kernel, "competition": c.download.competition}),
]}


@dataclass(frozen=True)
class Command:
    """A CLI command. A stage's command runs the stage unless `handler` handles its extra options."""

    name: str
    help: str
    handler: str = ""  # "module:function" called as f(cfg, args) -> exit code; "" = run the stage
    arguments: tuple[tuple[str, dict], ...] = ()
    after: str = ""  # "module:function" called as f(cfg) once the command succeeded (the leaderboard page)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        for flag, options in self.arguments:
            parser.add_argument(flag, **options)


# every train, score, submit and submissions brings the page up to date
REFRESH_PAGE = "pipeline.leaderboard.page:refresh"
COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("download", STAGES["download"].help),
    Command("augment", STAGES["augment"].help),
    Command("train", STAGES["train"].help, after=REFRESH_PAGE),
    Command("generate", STAGES["generate"].help),
    Command("score", STAGES["score"].help + "; or score any --images against any --real",
            handler="pipeline.metrics.score:command", after=REFRESH_PAGE, arguments=(
                ("--images", {"metavar": "PATH", "help": "folder or zip of generated images"}),
                ("--real", {"metavar": "PATH",
                            "help": "folder or zip of real images (default: score.real, else the training "
                                    "Monets); training paintings in it are left out"}),
                ("--out", {"metavar": "FILE", "help": "where to write the JSON result"}))),
    Command("zip", STAGES["zip"].help + "; --check PATH validates an existing zip",
            handler="pipeline.submission.archive:command",
            arguments=(("--check", {"metavar": "PATH",
                                    "help": "validate this zip against the competition's rules"}),)),
    Command("kernel", STAGES["kernel"].help),
    Command("push", "build the kernel and push it to Kaggle; prints its URL and version",
            handler="pipeline.kaggle.submit:push_command"),
    Command("submit",
            "push, wait for the kernel, fetch and check images.zip, score it, submit it to the competition, "
            "wait for its public score", handler="pipeline.kaggle.submit:submit_command", after=REFRESH_PAGE),
    Command("submissions", "refresh the public scores of your Kaggle submissions; print them beside the "
            "local ones", handler="pipeline.kaggle.scores:submissions_command", after=REFRESH_PAGE),
    Command("leaderboard", "write submissions/leaderboard.html, one row per run; --check renders it in "
            "headless Chromium", handler="pipeline.leaderboard.page:command",
            arguments=(("--check", {"action": "store_true",
                                    "help": "then check in headless Chromium that every image loads"}),)),
    Command("families", "list the model families (train.model); --settings NAME shows one family's settings",
            handler="pipeline.training.families.cli:command",
            arguments=(("--settings", {"metavar": "NAME",
                                       "help": "print this family's settings with defaults"}),)),
]}
