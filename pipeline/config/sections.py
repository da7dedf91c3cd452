"""Settings: one frozen dataclass per stage (a section of the TOML presets), each checking its own values.

Every field has a default that is right for the competition; presets in pipeline/config/presets/ only say
what differs. Loading, overrides and the TOML form live in loader.py.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..engine.errors import UserError
from ..engine.keys import digest
from . import jobs, legacy
from .models import model_sections


@dataclass(frozen=True)
class PathsConfig:
    data: str = "data"  # raw/, augmented/, runs/, .cache/ live here
    submissions: str = "submissions"  # images/, images.zip, leaderboard.csv live here


@dataclass(frozen=True)
class HardwareConfig:
    """How to run, not what to compute: never part of a cache key."""

    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 + grad scaler)
    # training only; slower wherever measured (docs/benchmarks.md): 6-18% on CPU for the three presets' steps,
    # 15-25% for ResNet-9 on an H100 from batch 4
    channels_last: bool = False
    compile: bool = False  # torch.compile the models (GPU only)
    workers: int = 0  # CPU worker threads/processes for image I/O; 0 = one per core
    progress_every_s: float = 60.0  # without a terminal (notebook, CI, pipe): one progress line this often

    def __post_init__(self) -> None:
        require(self.progress_every_s > 0, "hardware.progress_every_s", "must be > 0 (seconds)")


@dataclass(frozen=True)
class DownloadConfig:
    # auto | kaggle | kaggle-input | demo | dir:PATH  (kaggle-input = the competition's data among a Kaggle
    # notebook's inputs, found by content; auto = that inside a Kaggle notebook, else kaggle)
    source: str = "auto"
    competition: str = "gan-getting-started"
    image_size: int = 256  # every image must be image_size x image_size RGB
    skip_bad: bool = False  # skip and list bad images instead of stopping
    demo_monet: int = 300  # demo source: number of paintings
    demo_photos: int = 7038  # demo source: number of photos
    demo_seed: int = 0
    expect_monet: int = 300  # the competition's counts: the kaggle source must match them, other sources warn
    expect_photos: int = 7038

    def __post_init__(self) -> None:
        require(self.source in ("auto", "kaggle", "kaggle-input",
                                 "demo") or (self.source.startswith("dir:") and len(self.source) > 4),
                 "download.source",
                 f"must be auto, kaggle, kaggle-input, demo or dir:PATH (got '{self.source}')")
        require(self.image_size >= 16, "download.image_size", "must be >= 16")
        require(self.demo_monet >= 1 and self.demo_photos >= 1, "download.demo_monet/demo_photos",
                 "must be >= 1")


@dataclass(frozen=True)
class AugmentConfig:
    variants: int = 4  # augmented copies per painting, besides the original (300 -> 1,500)
    seed: int = 0
    hflip_p: float = 0.5
    crop_scale: tuple[float, float] = (0.7, 1.0)  # RandomResizedCrop area range, back to full size
    crop_ratio: tuple[float, float] = (0.9, 1.1)  # its aspect range: near 1 keeps brush strokes' proportions
    rotate_limit: float = 10.0  # degrees, then cropped to the largest box without empty corners
    color_jitter: float = 0.1  # brightness/contrast/saturation strength; hue is a fifth of it
    noise_std: tuple[float, float] = (0.01, 0.04)  # gaussian noise, fraction of the 0-255 range
    quality: int = 95  # JPEG quality of the written variants

    def __post_init__(self) -> None:
        require(self.variants >= 0, "augment.variants", "must be >= 0")
        require(1 <= self.quality <= 100, "augment.quality", "must be in 1..100")
        require(0.0 <= self.hflip_p <= 1.0, "augment.hflip_p", "must be in 0..1")
        require(0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0, "augment.crop_scale",
                 "must be [low, high] with 0 < low <= high <= 1")
        require(0.0 < self.crop_ratio[0] <= self.crop_ratio[1], "augment.crop_ratio",
                 "must be [low, high], 0 < low <= high")
        require(0.0 <= self.rotate_limit <= 45.0, "augment.rotate_limit", "must be in 0..45 degrees")
        require(0.0 <= self.color_jitter <= 1.0, "augment.color_jitter", "must be in 0..1")
        require(0.0 <= self.noise_std[0] <= self.noise_std[1] <= 1.0, "augment.noise_std",
                 "must be [low, high] with 0 <= low <= high <= 1")


LR_SCALING: dict[str, Callable[[int], float]] = {"none": lambda b: 1.0, "sqrt": lambda b: b ** 0.5,
                                                 "linear": lambda b: float(b)}
EPOCH_OVER = ("paintings", "photos")
INITS = ("", "normal", "xavier")  # train.init


@dataclass(frozen=True)
class TrainConfig:
    model: str = "cyclegan"  # a registered model family: `python -m pipeline families` lists them
    run: str = ""  # run folder name under data/runs/; empty = <model>-<config hash>
    seed: int = 0
    epochs: int = 20  # one epoch = one pass over train.epoch_over
    # paintings: an epoch is one pass over the augmented Monets | photos: over every photo (translation
    # families; the paintings are recycled, reshuffled each pass), as the published Kaggle recipes count
    epoch_over: str = "paintings"
    batch_size: int = 1
    image_size: int = 256  # training crop size (random crops at full resolution when < the data's size)
    lr: float = 2e-4  # generator learning rate
    lr_d: float = 2e-4  # discriminator learning rate
    # lr and lr_d are for batch 1; a global batch B scales them: none | sqrt (x sqrt B) | linear
    lr_scaling: str = "sqrt"
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # fraction of training after which the LR decays linearly to zero
    ema: float = 0.0  # 0 = off; else the decay of an average of the generators' weights (e.g. 0.999)
    diffaugment: str = ""  # "" = off, else a policy like "color,translation,cutout" (on every D input)
    # weight initialisation: normal = N(0, 0.02) | xavier = Xavier-normal, gain 0.02; "" = the family's own,
    # its paper's (xavier for cut, normal for the others; gan and progan keep their own schemes)
    init: str = ""
    # The family's own settings live in its section ([cyclegan], [dcgan], ...): `python -m pipeline families`.
    # Observability, checkpoints, budget
    log_every: int = 50  # steps between loss-log rows
    sample_every: int = 500  # steps between sample grids
    checkpoint_every: int = 1000  # steps between checkpoints
    checkpoint_every_s: float = 600.0  # and at least this often in seconds of training
    keep_last: int = 3  # checkpoints kept besides last.pt
    time_budget_min: float = 0.0  # 0 = no budget; else stop cleanly (checkpoint written) when spent
    # sessions the run is planned over: with N > 1, time_budget_min is each session's and the first plans the
    # whole run's steps for N of them (one learning-rate schedule); every `train` is one session
    sessions: int = 1
    select_by_mifid: int = 0  # 0 = off; else every N steps score on a photo subset and keep best.pt
    select_photos: int = 256

    def __post_init__(self) -> None:
        names = list(model_sections())
        require(self.model in names, "train.model", f"must be one of: {', '.join(names)}")
        require(self.lr_scaling in LR_SCALING, "train.lr_scaling",
                 f"must be one of: {', '.join(LR_SCALING)}")
        for name in ("epochs", "batch_size", "image_size", "log_every", "sample_every", "checkpoint_every",
                     "sessions"):
            require(getattr(self, name) >= 1, f"train.{name}", "must be >= 1")
        for name in ("keep_last", "time_budget_min", "select_by_mifid"):
            require(getattr(self, name) >= 0, f"train.{name}", "must be >= 0")
        require(0.0 <= self.decay_start <= 1.0, "train.decay_start", "must be in 0..1")
        require(0.0 <= self.ema < 1.0, "train.ema", "must be in 0..1 (0 = off; e.g. 0.999)")
        require(self.epoch_over in EPOCH_OVER, "train.epoch_over",
                 f"must be one of: {', '.join(EPOCH_OVER)}")
        for name in ("lr", "lr_d", "checkpoint_every_s"):
            require(getattr(self, name) >= 0, f"train.{name}", "must be >= 0")
        require(self.init in INITS, "train.init", 'must be "" (the family\'s own), normal or xavier')
        policy = [p.strip() for p in self.diffaugment.split(",") if p.strip()]
        require(all(p in ("color", "translation", "cutout") for p in policy), "train.diffaugment",
                 'must be "" (off) or a comma-separated list of: color, translation, cutout')

    def lr_factor(self, world_size: int = 1) -> float:
        """How much lr and lr_d grow for the global batch (batch_size x processes): Adam's updates are
        normalised, so the square root keeps the noise per step about as it is at batch 1."""
        return LR_SCALING[self.lr_scaling](self.batch_size * world_size)


@dataclass(frozen=True)
class GenerateConfig:
    count: int = 7500  # dcgan: images to sample (cyclegan translates every photo)
    quality: int = 95
    batch_size: int = 16
    checkpoint: str = "auto"  # auto (best.pt if present, else last.pt) | best | last | a path
    use_ema: bool = True  # the generator's averaged weights where the checkpoint has them (train.ema)
    # 0 = off; else drop images closer than this cosine distance to a training Monet
    max_memorization: float = 0.0
    seed: int = 0  # dcgan noise (and its replacements under the memorisation guard)
    # a family that translates in several steps (unsb): how many (0 = as trained); fewer are faster
    steps: int = 0
    # 0 = the whole submission; else only this many images, for scoring runs side by side (a sweep): a
    # seeded subset of the photos (the data set's first four, the leaderboard's fixed photos, included) or
    # this many noise samples
    subset: int = 0

    def __post_init__(self) -> None:
        require(1 <= self.quality <= 100, "generate.quality", "must be in 1..100")
        require(self.batch_size >= 1, "generate.batch_size", "must be >= 1")
        require(self.steps >= 0, "generate.steps", "must be >= 0 (0 = as many steps as the run trained)")
        require(0.0 <= self.max_memorization < 1.0, "generate.max_memorization",
                 "must be in 0..1 (a cosine distance; 0 = off, the MiFID threshold is 0.1)")


@dataclass(frozen=True)
class ScoreConfig:
    weights: str = ""  # path of pt_inception-2015-12-05-6726825d.pth; empty = torch hub cache, then download
    limit: int = 0  # 0 = score every image; else a random subset of this many (marked as such)
    seed: int = 0
    batch_size: int = 50
    epsilon: float = 0.1  # memorisation threshold of MiFID
    half: bool = False  # Inception in fp16 on GPU
    # the reference paintings: "" = the training paintings (raw/monet_jpg), else a folder or zip of another
    # set, from which the training paintings it holds are left out (see pipeline/metrics/reference.py)
    real: str = ""

    def __post_init__(self) -> None:
        require(self.limit >= 0, "score.limit", "must be >= 0")
        require(self.batch_size >= 1, "score.batch_size", "must be >= 1")


@dataclass(frozen=True)
class ZipConfig:
    min_images: int = 7000
    max_images: int = 10000
    image_size: int = 256
    decode_sample: int = 64  # images decoded again from the written archive as a check


@dataclass(frozen=True)
class KernelConfig:
    slug: str = "monet-pipeline"
    title: str = "Monet pipeline"
    username: str = ""  # empty = from the Kaggle credentials
    is_private: bool = True
    accelerator: str = "t4x2"  # t4x2 (GPU T4 x2, Kaggle's GPU for this competition) | none (CPU only)
    launcher: str = "auto"  # how the notebook trains: auto (torchrun when > 1 GPU) | torchrun | inprocess
    processes: int = 0  # torchrun processes; 0 = one per visible GPU (2 on T4 x2)
    time_limit_min: float = 300.0  # Kaggle's limit for the whole notebook run
    margin_min: float = 20.0  # kept free at the end of the run, after generate + zip + tidy
    enable_internet: bool = False
    # owner/dataset holding the FID weights file, attached; without it the kernel skips scoring
    weights_dataset: str = ""
    preset: str = "kaggle"  # the settings the notebook runs with: a preset name or a TOML file
    set: tuple[str, ...] = ()  # overrides on top of kernel.preset: ["section.key=value", ...]
    # What the kernel does (config/jobs.py): submit = the notebook that makes images.zip (trains first, unless
    # checkpoint_from) | train = one session of a run over train.sessions sessions, its output the run folder
    role: str = "submit"
    session: int = 1  # role=train: which session this kernel is; its slug is <slug>-train-<session>
    # role=train: Kaggle's limit for a notebook that only trains. 540 = the shorter of the published figures:
    # a 9-hour session limit (Kaggle's quota message, 2026) and 12 hours (the client's help on --timeout)
    train_limit_min: float = 540.0
    # role=submit with checkpoint_from: the limit of a notebook that only generates and zips (minutes of work)
    generate_limit_min: float = 60.0
    # role=submit: owner/kernel-slug of a train kernel whose output holds the run, or dataset:owner/slug of a
    # run uploaded with `make upload`: attach it and only generate
    checkpoint_from: str = ""
    # "<sweep>/<variant>" for a sweep variant's train kernel: it also renders and scores sweep.score_images
    sweep: str = ""

    def __post_init__(self) -> None:
        require(len(self.slug) >= 5 and self.slug.replace("-",
                                                           "").isalnum() and self.slug == self.slug.lower(),
                 "kernel.slug", "must be at least 5 characters of a-z, 0-9 and '-'")
        require(len(self.title) >= 5, "kernel.title", "must be at least 5 characters (Kaggle's rule)")
        require(self.accelerator in ACCELERATORS, "kernel.accelerator",
                 f"must be one of: {', '.join(ACCELERATORS)} (the P100 is retired and today's Kaggle "
                 "torch does not run on it; TPUs do not run this PyTorch pipeline)")
        require(self.launcher in ("auto", "torchrun", "inprocess"), "kernel.launcher",
                 "must be one of: auto, torchrun, inprocess")
        require(self.time_limit_min > 0 and self.margin_min >= 0, "kernel.time_limit_min/margin_min",
                 "must be > 0 / >= 0 minutes")
        require(self.session >= 1, "kernel.session", "must be >= 1 (the first session is 1)")
        require(self.train_limit_min > 0 and self.generate_limit_min > 0,
                 "kernel.train_limit_min/generate_limit_min", "must be > 0 minutes")
        owner_slug = re.fullmatch(rf"({jobs.DATASET})?[\w.-]+/[\w.-]+", self.checkpoint_from)
        require(not self.checkpoint_from or owner_slug is not None, "kernel.checkpoint_from",
                f"must be owner/kernel-slug, e.g. you/{self.slug}-train-3, or dataset:owner/slug for a run "
                "put on Kaggle with `make upload`")
        bad = [item for item in self.set if "=" not in item]
        require(not bad, "kernel.set", f"holds section.key=value items; got {', '.join(map(repr, bad))}")
        try:
            jobs.resolve(self.role, self.session, self.checkpoint_from, self.sweep)
        except ValueError as exc:
            raise UserError(f"setting {exc}") from None

    @property
    def job(self) -> jobs.KernelJob:
        """What this kernel does, read from role, session, checkpoint_from and sweep."""
        return jobs.resolve(self.role, self.session, self.checkpoint_from, self.sweep)

    def doing(self, job: jobs.KernelJob) -> KernelConfig:
        """These settings for a kernel that does `job`."""
        return dataclasses.replace(self, **job.settings())

    @property
    def machine_shape(self) -> str:
        """kernel-metadata.json's machine_shape ("" = no accelerator)."""
        return ACCELERATORS[self.accelerator]

    @property
    def kernel_slug(self) -> str:
        """The kernel's slug on Kaggle."""
        return self.job.slug(self)

    @property
    def kernel_title(self) -> str:
        """Its title, which Kaggle turns into the same slug."""
        return self.job.title(self)

    @property
    def limit_min(self) -> float:
        """Kaggle's limit for this kernel's run: its session timeout, and what the GPU quota must cover."""
        return self.job.limit_min(self)


ACCELERATORS = {"t4x2": "NvidiaTeslaT4", "none": ""}  # kernel.accelerator -> Kaggle's machine_shape


@dataclass(frozen=True)
class SubmitConfig:
    dry_run: bool = False  # do everything up to the submission itself
    poll_timeout_min: float = 330.0  # stop following the kernel after this long (it keeps running on Kaggle)
    poll_interval_s: float = 30.0  # longest pause between status checks (the first checks come sooner)
    message: str = ""  # empty = run name and config hash
    retries: int = 4  # tries of a Kaggle request that failed transiently (5xx, 429, reset, timeout)
    retry_delay_s: float = 2.0  # first pause between tries; doubles after each
    # > 0: submit this kernel version's fetched output (e.g. after a dry run) without a new run
    version: int = 0
    # after submitting, wait up to this long for Kaggle's public score (0 = don't wait; `python -m pipeline
    # submissions` fetches it later)
    wait_score_min: float = 60.0

    def __post_init__(self) -> None:
        require(self.retries >= 1 and self.version >= 0, "submit.retries/version", "must be >= 1 / >= 0")
        require(self.wait_score_min >= 0, "submit.wait_score_min", "must be >= 0 minutes (0 = don't wait)")
        require(self.poll_interval_s > 0 and self.poll_timeout_min > 0 and self.retry_delay_s >= 0,
                 "submit.poll_interval_s/poll_timeout_min/retry_delay_s", "must be positive")


@dataclass(frozen=True)
class SweepConfig:
    """How `python -m pipeline sweep` runs a sweep's variants (the variants themselves are in its file)."""

    backend: str = "kaggle"  # kaggle (a train kernel per variant) | local (one per visible GPU, else in turn)
    parallel: int = 2  # kaggle: variants running at once (Kaggle's cap on concurrent GPU sessions)
    score_images: int = 2000  # each variant renders and scores this many images: the same photos for all
    submit: str = "none"  # none | best: once every variant has ended, submit the lowest local MiFID's run

    def __post_init__(self) -> None:
        require(self.backend in ("kaggle", "local"), "sweep.backend", "must be one of: kaggle, local")
        require(self.parallel >= 1, "sweep.parallel", "must be >= 1")
        require(self.score_images >= 2, "sweep.score_images", "must be >= 2 (FID needs two images)")
        require(self.submit in ("none", "best"), "sweep.submit", "must be one of: none, best")


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    zip: ZipConfig = field(default_factory=ZipConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    submit: SubmitConfig = field(default_factory=SubmitConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    # One section per registered model family ([cyclegan], [dcgan], ...): cfg.families.cyclegan.ngf.
    families: Any = field(default_factory=lambda: family_sections_class()())
    preset: str = "default"

    def __post_init__(self) -> None:
        # Every integer setting is a count, a size, a step interval, a quality or a seed: none means anything
        # below zero (a negative seed even crashes numpy). The sections' own checks say more where they can.
        for name, group in self.sections().items():
            for f in fields(group):
                value = getattr(group, f.name)
                require(type(value) is not int or value >= 0, f"{name}.{f.name}", "must be >= 0")
        model_sections()[self.train.model].check(self.train, self.model_settings)
        lo, hi = self.zip.min_images, self.zip.max_images
        require(1 <= lo <= hi, "zip.min_images/max_images", "must satisfy 1 <= min_images <= max_images")
        require(lo <= self.generate.count <= hi, "generate.count",
                 f"must be in {lo}..{hi} (a submission holds {lo:,}-{hi:,} images)")

    def sections(self) -> dict[str, Any]:
        """Every settings section by its TOML name: the stages' ([train], ...), then the families'."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("families", "preset")}
        return {**own, **{f.name: getattr(self.families, f.name) for f in fields(self.families)}}

    @property
    def model_settings(self) -> Any:
        """The section of the family train.model names, e.g. cfg.families.cyclegan."""
        return getattr(self.families, self.train.model)

    # Where things live, derived from paths.* so that every stage agrees.
    def bank_dir(self, bank: str) -> Path:
        """The folder of a training image bank: the augmented Monets or the photos."""
        return {"monet": self.augmented_dir / "monet", "photo": self.raw_dir / "photo_jpg"}[bank]

    @property
    def data_dir(self) -> Path:
        return Path(self.paths.data)

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def augmented_dir(self) -> Path:
        return self.data_dir / "augmented"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / ".cache"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "runs" / (self.train.run or f"{self.train.model}-{self.train_hash()[:8]}")

    @property
    def submissions_dir(self) -> Path:
        return Path(self.paths.submissions)

    @property
    def images_dir(self) -> Path:
        return self.submissions_dir / "images"

    @property
    def zip_path(self) -> Path:
        return self.submissions_dir / "images.zip"

    @property
    def checkpoint_path(self) -> Path:
        """The checkpoint generate uses: generate.checkpoint, where auto = best.pt (kept by MiFID during
        training) when present, else last.pt."""
        choice = self.generate.checkpoint
        if choice == "auto":
            best = self.run_dir / "best.pt"
            return best if best.exists() else self.run_dir / "last.pt"
        if choice in ("best", "last"):
            return self.run_dir / f"{choice}.pt"
        return Path(choice)

    def train_hash(self) -> str:
        """Hash of what decides the trained model: the train settings minus how the run is named, watched and
        budgeted (so that a larger time budget continues the same run folder instead of starting over), and
        the family's section, hashed as runs were named before (config/legacy.py)."""
        train = {k: v for k, v in dataclasses.asdict(self.train).items() if k not in RUN_KEYS}
        sections = {name: getattr(self.families, name) for name in model_sections()}
        return digest(legacy.run_name_values(self.train.model, train, sections))


RUN_KEYS = ("run", "log_every", "sample_every", "checkpoint_every", "checkpoint_every_s", "keep_last",
            "time_budget_min", "sessions", "select_by_mifid", "select_photos")


def family_sections_class() -> type:
    """A frozen dataclass with one field per registered family, holding its settings section (made anew only
    when the registry changes, so that two configs of the same registry compare equal)."""
    key = tuple((name, section.settings) for name, section in model_sections().items())
    if key not in _SECTIONS_CLASSES:
        _SECTIONS_CLASSES[key] = dataclasses.make_dataclass(
            "FamilySections", [(name, cls, field(default_factory=cls)) for name, cls in key], frozen=True)
    return _SECTIONS_CLASSES[key]


_SECTIONS_CLASSES: dict[tuple[tuple[str, type], ...], type] = {}


def require(ok: bool, key: str, rule: str) -> None:
    """A settings check: every section's, the families' too, fails in one line: `setting KEY RULE`."""
    if not ok:
        raise UserError(f"setting {key} {rule}")


