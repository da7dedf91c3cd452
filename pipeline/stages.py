"""The pipeline at a glance: every stage, what it reads, what settings decide it, and what it writes.

download -> augment -> train -> generate -> score -> zip, and the kernel stage, which builds the Kaggle
notebook (kernels/builder.py) for the commands that push it; it is kept out of STAGES, the data chain the
notebook itself runs. Build functions are named as "module:function" within this
package and imported only when a stage must run (engine/stage.py runs them and keeps their cache); the CLI
(cli.py), the Kaggle notebook and the Kaggle side run stages from this list.
"""
from __future__ import annotations

from pathlib import Path

from .config import Config
from .data.sources import dir_source
from .datasets.store import weights_dataset
from .engine.keys import PACKAGE_ROOT
from .engine.stage import Stage
from .generate import provenance
from .training.family import get_family


def _download_inputs(cfg: Config) -> list[Path]:
    # Only the two JPEG folders (a Kaggle input also holds TFRecords); a missing one is left to the
    # stage, whose error names the folder and the setting.
    folder = dir_source(cfg)
    return [p for p in (folder / "monet_jpg", folder / "photo_jpg") if p.is_dir()] if folder else []


def _train_inputs(cfg: Config) -> list[Path]:
    family = get_family(cfg.train.model)
    banks = family.banks(cfg.train, cfg.model_settings)
    return [cfg.bank_dir(bank) for bank in banks] + family.extra_inputs(cfg)


def _train_settings(cfg: Config) -> dict:
    return {"train": cfg.train, cfg.train.model: cfg.model_settings}


def _generate_inputs(cfg: Config) -> list[Path]:
    inputs = [cfg.checkpoint_path]
    if get_family(cfg.train.model).takes_photos:
        inputs.append(cfg.bank_dir("photo"))
    if cfg.generate.max_memorization > 0:
        inputs.append(cfg.raw_dir / "monet_jpg")
    return inputs


def _generate_settings(cfg: Config) -> dict:
    return {"generate": cfg.generate, "model": cfg.train.model, "score": cfg.score}


def _score_inputs(cfg: Config) -> list[Path]:
    # the training paintings are read either way: the reference, or what is left out of score.real
    return [cfg.images_dir, cfg.raw_dir / "monet_jpg"] + ([Path(cfg.score.real)] if cfg.score.real else [])


def _family_modules(cfg: Config) -> list[str]:
    """The family's generator and trainer modules: found by the registry, not by an import the code key can
    follow, so the train stage names them."""
    return get_family(cfg.train.model).heavy_modules()


def _generator_module(cfg: Config) -> list[str]:
    """What generate rebuilds: the family's generator module (not its training step)."""
    return get_family(cfg.train.model).heavy_modules()[:1]


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("download",
          "fetch the competition images (Kaggle, a folder, or the offline demo set) into data/raw",
          build=".data.download:build", output=lambda c: c.raw_dir,
          inputs=_download_inputs,
          settings=lambda c: c.download),
    Stage("augment", "300 Monets -> 1,500: each painting plus 4 augmented variants, and a contact sheet",
          build=".data.augment:build", output=lambda c: c.augmented_dir,
          inputs=lambda c: [c.raw_dir / "monet_jpg"], settings=lambda c: c.augment),
    Stage("train", "train the model family train.model names into data/runs/<run> (resumable; samples, "
          "loss plot)", build=".training.loop:build", output=lambda c: c.run_dir,
          inputs=_train_inputs, settings=_train_settings, plugins=_family_modules, atomic=False),
    Stage("generate", "turn photos or noise, as the run's model family takes, into Monet-style JPEGs in "
          "submissions/images",
          build=".generate.render:build", output=lambda c: c.images_dir, inputs=_generate_inputs,
          settings=_generate_settings, plugins=_generator_module),
    Stage("score",
          "local MiFID of submissions/images against the Monets; appends to submissions/leaderboard.csv",
          build=".scoring.score:build", output=lambda c: c.submissions_dir / "score.json",
          inputs=_score_inputs, settings=lambda c: c.score),
    Stage("zip", "validate submissions/images and write submissions/images.zip (7,000-10,000 JPEGs)",
          build=".submission.archive:build", output=lambda c: c.zip_path,
          inputs=lambda c: [c.images_dir],
          # the provenance record is hidden (not in the folder's fingerprint) but rides in the zip's comment
          settings=lambda c: {"zip": c.zip, "provenance": provenance.read_text(c.images_dir)}),
]}

# Its input is the pipeline package itself: the notebook carries the code, so any change to it rebuilds. The
# FID weights' dataset it attaches counts among its settings as resolved (datasets/store.py): `make
# upload-weights` rebuilds a kernel that had none.
KERNEL = Stage(
    "kernel", "build the Kaggle notebook kernel that runs this pipeline on Kaggle, in kernels/<slug>",
    build=".kernels.builder:build", output=lambda c: Path("kernels") / c.kernel.kernel_slug,
    inputs=lambda c: [PACKAGE_ROOT],
    settings=lambda c: {"kernel": c.kernel, "competition": c.download.competition,
                        "sessions": c.train.sessions, "weights": weights_dataset(c)})
