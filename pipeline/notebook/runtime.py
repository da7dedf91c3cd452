"""What the Kaggle notebook runs besides the stages: its settings rooted at $KAGGLE_ROOT, training on its
own clock (in-process, or under torchrun on several GPUs), the training pictures shown inline, optional
scoring, and a tidy /kaggle/working whose one large file is images.zip.

Imported only inside the notebook, from the copy of the pipeline the notebook carries. It lives here
rather than in the cells so the cells stay one-liners a reader can follow on Kaggle, and so it is
tested like the rest of the code (tests/test_kernel.py runs the notebook in a folder laid out like
Kaggle's, with KAGGLE_ROOT pointing at it).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from ..config import Config, build_config, to_toml, tomllib
from ..config.jobs import GenerateFrom, TrainSession
from ..engine import atomic
from ..engine.errors import StageSkipped, UserError
from ..generate import provenance
from ..generate.subset import FIXED
from ..stages import STAGES
from ..training import checkpoint
from ..training.family import get_family
from ..training.state import read_sessions
from . import attached
from . import clock as notebook_clock
from . import preflight as checks

KAGGLE_ROOT = "/kaggle"  # where a Kaggle notebook sees its input/ and working/
WEIGHTS_GLOB = "pt_inception-2015-12-05*.pth"  # the FID Inception weights, from an attached dataset
KEEP_SUFFIXES = (".png", ".gif", ".csv", ".json", ".toml", ".txt", ".log")
KEEP_MAX_BYTES = 20 * 2**20
log = logging.getLogger(__name__)  # a failure the notebook goes on after: its traceback, on stderr


def root() -> Path:
    return Path(os.environ.get("KAGGLE_ROOT") or KAGGLE_ROOT)


def settings(text: str, preset: str) -> Config:
    """The settings baked into the notebook, with every /kaggle path moved under $KAGGLE_ROOT, and
    score.weights pointed at the FID weights when an attached dataset holds them."""
    values = tomllib.loads(text)
    for section in values.values():
        for key, value in section.items():
            if isinstance(value, str):
                section[key] = _reroot(value, root())
    cfg = build_config(values, preset=preset)
    weights = next(iter(sorted((root() / "input").rglob(WEIGHTS_GLOB))), None)
    if not cfg.score.weights and weights is not None:
        cfg = replace(cfg, score=replace(cfg.score, weights=str(weights)))
    return cfg


def _reroot(value: str, base: Path) -> str:
    for prefix in ("", "dir:"):
        head = prefix + KAGGLE_ROOT
        if value == head or value.startswith(head + "/"):
            return prefix + str(base) + value[len(head):]
    return value


def describe(cfg: Config) -> None:
    """Print where this run reads and writes, so a reader of the log can check it at a glance."""
    t, k = cfg.train, cfg.kernel
    budget = f"at most {t.time_budget_min:g} min" if t.time_budget_min else "set by the notebook's clock"
    print(f"data:        {cfg.download.source}")
    print(f"run folder:  {cfg.run_dir}")
    family, settings = get_family(cfg.train.model), cfg.model_settings
    print(f"model:       {family.summary(settings)}, {family.length(t, settings)}, training time {budget}")
    print(f"hardware:    kernel.accelerator={k.accelerator}, launcher {k.launcher}, "
          f"Kaggle's limit {k.limit_min:g} min with a {k.margin_min:g}-min margin")
    print(f"role:        {_role(cfg)}")
    print(f"output:      {cfg.zip_path if k.job.submitted else working() / 'runs' / cfg.run_dir.name}")
    print(f"FID weights: {cfg.score.weights or 'none attached: scoring will be skipped'}")


def _role(cfg: Config) -> str:
    job = cfg.kernel.job
    if isinstance(job, TrainSession):
        return (f"train: session {job.n} of {cfg.train.sessions} of one run; its output is the run "
                "folder the next session (or a submit kernel) attaches")
    if isinstance(job, GenerateFrom):
        return f"submit: generate and zip from the run {job.source} trained (no training here)"
    return "submit: train, generate and zip"


def working() -> Path:
    return root() / "working"


def train(cfg: Config, started: float) -> Path:
    """Train within the notebook's clock (see pipeline/notebook/clock.py), on every GPU.

    kernel.launcher: auto = torchrun when there is more than one process to run (one per visible GPU,
    or kernel.processes), else in this process; its output streams into the cell either way.
    """
    finish_s = 0.0  # a train kernel generates nothing
    if cfg.kernel.job.submitted:
        print("clock: measuring what generate + zip will cost on this machine ...", flush=True)
        finish_s = notebook_clock.measure_finish_s(cfg)
    budget = notebook_clock.budget(cfg, started, finish_s)
    print(f"clock: {budget}", flush=True)
    cfg = replace(cfg, train=replace(cfg.train, time_budget_min=budget.train_s / 60))
    processes = cfg.kernel.processes or _gpu_count()
    if cfg.kernel.launcher == "inprocess" or cfg.kernel.launcher == "auto" and processes <= 1:
        return STAGES["train"].run(cfg)
    return _torchrun(cfg, max(1, processes))


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _torchrun(cfg: Config, processes: int) -> Path:
    """`make train GPUS=N` from the notebook: N processes under torchrun on the resolved settings, their
    output streamed into the cell; a non-zero exit fails the cell."""
    settings_file = cfg.data_dir / "train-settings.toml"
    atomic.write_text(settings_file, to_toml(cfg))
    # the unpacked copy: the children import the same code
    code_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [code_root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "pipeline", "train", "--config", str(settings_file)]
    print(f"train: {processes} processes under torchrun", flush=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          bufsize=1) as proc:
        for line in proc.stdout:  # type: ignore[union-attr]
            print(line, end="", flush=True)
    if proc.returncode:
        raise UserError(f"train: torchrun with {processes} processes exited with code {proc.returncode}; "
                        "the lines above say why")
    return cfg.run_dir


def show_training(cfg: Config) -> None:
    """Display the loss plot and the latest sample grid of the run inline."""
    from IPython.display import Image, display

    pictures = sorted(cfg.run_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)
    loss = [p for p in pictures if "loss" in p.name]
    samples = [p for p in pictures if "sample" in p.as_posix() and p not in loss]
    for what, found in (("loss plot", loss), ("sample grid", samples)):
        if found:
            print(f"{what}: {found[-1]}")
            display(Image(filename=str(found[-1])))
        else:
            print(f"no {what} in {cfg.run_dir}")


def score(cfg: Config) -> None:
    """Score the generated images when the FID weights are attached; otherwise say that it is skipped."""
    if not cfg.score.weights:
        print(f"score: skipped: no {WEIGHTS_GLOB} under {root() / 'input'} (attach a dataset holding the FID "
              "weights, kernel.weights_dataset, to score inside the notebook)")
        return
    try:
        STAGES["score"].run(cfg)
    except StageSkipped as exc:
        print(f"score: skipped: {exc}")
    # scoring is optional: a failure, whatever it is, must not fail the notebook that wrote images.zip
    except Exception as exc:
        log.exception("score: failed (%s); images.zip is written and unaffected", type(exc).__name__)


def preflight(cfg: Config, facts: checks.TorchFacts | None = None) -> None:
    """The notebook's first check (preflight.py), with the inputs where Kaggle mounts them."""
    checks.preflight(cfg, root() / "input", facts)


def continue_session(cfg: Config) -> None:
    """Session n + 1 of a run: take over the previous session's run folder (attached as an input)."""
    found = checks.check_attached(cfg, root() / "input")
    if found is None:
        print(f"continue: session 1 of {cfg.train.sessions} starts the run")
        return
    attached.continue_run(cfg, found[0])


def attach_run(cfg: Config) -> Config:
    """A submit kernel with kernel.checkpoint_from: the settings that generate from the attached run."""
    found = checks.check_attached(cfg, root() / "input")
    if found is None:
        raise UserError("kernel.checkpoint_from is not set: this notebook trains its own run")
    return attached.generate_from(cfg, found[0])


def name_trainer(cfg: Config) -> None:
    attached.name_trainer(cfg)


def show_session(cfg: Config) -> None:
    """The loss plot, the latest sample grid and where the run stands after this session."""
    show_training(cfg)
    sessions = read_sessions(cfg.run_dir)
    print(sessions[-1]["line"] if sessions else f"{cfg.run_dir}: no session recorded")


def score_subset(cfg: Config) -> None:
    """A sweep variant's kernel: generate sweep.score_images images of the same photos as every variant's,
    score them where the FID weights are attached or can be downloaded, and keep score.json and the fixed
    photos through the run (working/sweep/: the sweep fetches them) but not the images."""
    folder = working() / "sweep"
    sub = replace(cfg, generate=replace(cfg.generate, subset=cfg.sweep.score_images),
                  paths=replace(cfg.paths, submissions=str(folder)))
    STAGES["generate"].run(sub)
    try:
        STAGES["score"].run(sub)
    except StageSkipped as exc:
        print(f"score: skipped: {exc}")
    thumbs = folder / "thumbs"
    thumbs.mkdir(exist_ok=True)
    images = sorted(p for p in sub.images_dir.iterdir() if p.suffix == ".jpg")
    for path in images[:FIXED] + [sub.images_dir / provenance.RECORD]:
        if path.is_file():
            shutil.copy2(path, thumbs / path.name)
    shutil.rmtree(sub.images_dir, ignore_errors=True)


def tidy(cfg: Config) -> None:
    """Leave in working/ what this kernel's output is for, and nothing else: images.zip with the small
    pictures and logs (a submit kernel), or the run folder the next session attaches (a train kernel)."""
    if cfg.kernel.job.submitted:
        _tidy_submission(cfg)
    else:
        _tidy_run(cfg)
    for path in sorted(working().rglob("*")):  # the pipeline's own locks and stamps are no output
        if path.is_file() and (path.name.endswith(".lock") or path.name.endswith(".stage.json")):
            path.unlink()
    print_contents(working())


def _tidy_run(cfg: Config) -> None:
    """A train kernel's output: runs/<run>/ with last.pt (weights, EMA, optimisers, the plan), best.pt where
    kept, the losses, plots, the latest sample grid and sessions.json; no history of checkpoints, no data
    copy."""
    target = working() / "runs" / cfg.run_dir.name
    if not (cfg.run_dir / "last.pt").is_file():
        raise RuntimeError(f"{cfg.run_dir / 'last.pt'} is missing: the train cell above failed")
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(cfg.run_dir, target)  # one file system: a rename, however large the checkpoints
    for old in checkpoint.history(target):
        old.unlink()  # last.pt is the newest of them, as a file of its own
    grids = sorted((target / "samples").glob("step_*.png"))
    for grid in grids[:-1]:
        grid.unlink()
    _remove_inside_working(cfg.data_dir)


def _remove_inside_working(folder: Path) -> None:
    if folder.resolve().is_relative_to(working().resolve()) and folder.resolve() != working().resolve():
        shutil.rmtree(folder, ignore_errors=True)  # never outside working/


def _tidy_submission(cfg: Config) -> None:
    """Kaggle keeps everything in /kaggle/working as the notebook's output (20 GB at most), and the
    competition only needs images.zip: the 7,000 loose JPEGs, the data copy and the checkpoints go."""
    if not cfg.zip_path.is_file():
        raise RuntimeError(f"{cfg.zip_path} is missing: the zip cell above failed")
    kept = working() / "run"
    for path in sorted(cfg.run_dir.rglob("*")) if cfg.run_dir.is_dir() else []:
        small = path.is_file() and path.stat().st_size <= KEEP_MAX_BYTES and not path.name.startswith(".")
        if small and path.suffix in KEEP_SUFFIXES:
            target = kept / path.relative_to(cfg.run_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    for folder in (cfg.images_dir, cfg.data_dir):
        _remove_inside_working(folder)


def print_contents(folder: Path) -> None:
    """What the run leaves as its output: a line per file, or one line for a folder of many (sample grids)."""
    by_folder: dict[Path, list[Path]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        by_folder.setdefault(path.parent, []).append(path)
    for parent, files in by_folder.items():
        if len(files) > 5:
            size = sum(f.stat().st_size for f in files)
            print(f"{size / 2**20:9.1f} MiB  {parent.relative_to(folder)}/ ({len(files)} files)")
            continue
        for path in files:
            print(f"{path.stat().st_size / 2**20:9.1f} MiB  {path.relative_to(folder)}")
