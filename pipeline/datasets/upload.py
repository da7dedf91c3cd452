"""`python -m pipeline upload [--run NAME]` (make upload RUN=NAME) and `upload --weights` (make
upload-weights): what a Kaggle notebook needs from this machine, put on Kaggle as private datasets through the
official client, since this competition scores only a notebook's output.

- A run trained here (data/runs/<run>/) goes up as the checkpoint generate uses (best.pt where training kept
  one, else last.pt) beside the config.toml it was trained with, both at the dataset's top (plain files: no
  archive for Kaggle to unpack): to the notebook the dataset is a run folder (preflight.find_run), and the
  run's name travels in the checkpoint's own settings, so the images' provenance names the run. A submit
  kernel attaches it with kernel.checkpoint_from=dataset:<owner>/<slug> (`make submit RUN=<run>`).
- The FID weights go up once, under the name pytorch-fid gives the file; a kernel whose
  kernel.weights_dataset is empty then attaches them (builder.py), so its notebook can score.

The first upload creates the dataset, later ones add versions. The command waits until Kaggle says the new
version is ready (a notebook pushed before that would get the previous one), then records it (uploads.py);
the same files are not sent again unless --force.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..config import Config
from ..engine.errors import UserError
from ..engine.poll import Poll
from ..engine.text import slug, utc_now
from ..kaggle import api as kaggle_api
from ..kaggle import datasets as kaggle_datasets
from ..kaggle.status import DatasetStatus
from .store import WEIGHTS, Upload, Uploads, run_record

NAME_LIMIT = 50  # Kaggle's longest dataset slug and title (6 to 50 characters: the client checks both)
READY_TIMEOUT_S = 3600.0  # how long to wait for Kaggle to process an upload before leaving it to do so alone
LICENSE = "CC0-1.0"  # what `kaggle datasets init` writes; the datasets stay private whatever it says


def command(cfg: Config, args: argparse.Namespace) -> int:
    if args.weights and args.run:
        raise UserError("--weights uploads the FID weights, --run NAME a run: give one of them")
    if args.weights:
        upload_weights(cfg, args.force)
    else:
        upload_run(cfg, args.run, args.force)
    return 0


def upload_run(cfg: Config, run: str | None, force: bool = False) -> Upload:
    """Upload the run folder data/runs/<run> (else the run the settings name) as its dataset's next
    version."""
    folder = cfg.data_dir / "runs" / run if run else cfg.run_dir
    if not folder.is_dir():
        raise UserError(f"no run folder {folder}: train one first (make train), or name a folder of "
                        f"{folder.parent} with RUN=<name>")
    best = folder / "best.pt"
    ckpt = best if best.is_file() and cfg.generate.checkpoint in ("auto", "best") else folder / "last.pt"
    if not ckpt.is_file() or not (folder / "config.toml").is_file():
        missing = "config.toml" if ckpt.is_file() else ckpt.name
        raise UserError(f"{folder} holds no {missing}: not a trained run; train it (make train, "
                        "same CONFIG/SET) until it writes a checkpoint, then upload it")
    from ..training import checkpoint  # torch: only once there is a checkpoint to read

    try:
        step = int(checkpoint.read(ckpt, map_location="cpu", mmap=True)["step"])
    except ValueError as exc:
        raise UserError(f"{ckpt} is unreadable ({exc}): train the run again") from None
    files = {ckpt.name: ckpt, "config.toml": folder / "config.toml"}
    what = f"run {folder.name} ({ckpt.name}, step {step:,})"
    record = _upload(cfg, run_record(folder.name), folder.name, files, what, step, force)
    print(f"upload: submit from it with: make submit RUN={folder.name} (or SET=kernel.checkpoint_from="
          f"{record.source})")
    return record


def upload_weights(cfg: Config, force: bool = False) -> Upload:
    """Upload the FID weights file (score.weights, else where pytorch-fid keeps it) as a dataset of its
    own."""
    from ..metrics.features import WEIGHTS_FILE, hub_weights_path  # torch

    path = Path(cfg.score.weights).expanduser() if cfg.score.weights else hub_weights_path()
    if not path.is_file():
        raise UserError(f"no FID weights file at {path}: put {WEIGHTS_FILE} there (make score downloads "
                        "it when online), or give its path with --set score.weights=PATH")
    # the name the notebook looks for (notebook/runtime.py), whatever the local file is called
    return _upload(cfg, WEIGHTS, "FID weights", {WEIGHTS_FILE: path}, f"the FID weights {path}", 0, force)


def dataset_names(cfg: Config, what: str) -> tuple[str, str]:
    """(slug, title) of the dataset for `what`: kernel.slug and kernel.title with `what` added, within
    Kaggle's 50 characters (a slug cut short keeps a hash of the whole, so two runs never share one)."""
    name, title = slug(f"{cfg.kernel.slug}-{what}"), f"{cfg.kernel.title} {what}"
    if len(name) > NAME_LIMIT:
        name = f"{name[:NAME_LIMIT - 7].rstrip('-')}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"
    return name, title if len(title) <= NAME_LIMIT else name


def _upload(cfg: Config, name: str, what: str, files: dict[str, Path], described: str, step: int,
            force: bool) -> Upload:
    """Send `files` (path in the dataset -> local file) as the next version of the dataset for `what`, wait
    until Kaggle has it ready, and record it as `name`."""
    store, digest = Uploads(cfg.submissions_dir), _digest(files)
    known = store.get(name)
    if known is not None and known.digest == digest and not force:
        print(f"upload: {described} is on Kaggle already: {known.ref} version {known.version} "
              f"(--force, or FORCE=1, uploads it again)")
        return known
    retry = kaggle_api.Retry(tries=cfg.submit.retries, delay_s=cfg.submit.retry_delay_s)
    dataset_slug, title = dataset_names(cfg, what)
    ref = f"{cfg.kernel.username or kaggle_api.username()}/{dataset_slug}"
    size = sum(p.stat().st_size for p in files.values())
    print(f"upload: {described}, {size / 2**20:.1f} MiB, to the private dataset {ref}", flush=True)
    staging = cfg.submissions_dir / "kaggle"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=staging, prefix=".upload-") as tmp:
        folder = Path(tmp)
        for arcname, source in files.items():
            _place(source, folder / arcname)
        (folder / kaggle_datasets.DATASET_METADATA).write_text(json.dumps(
            {"id": ref, "title": title, "licenses": [{"name": LICENSE}],
             "description": f"{described}, uploaded by monet-pipeline (`python -m pipeline upload`)"}))
        before, url = kaggle_datasets.upload_dataset(folder, described, retry)
    version = _wait_ready(cfg, ref, before, url, retry)
    print(f"upload: {ref} version {version} is ready: {url}")
    record = Upload(ref, version, Path(next(iter(files))).name, step, digest, utc_now())
    return store.put(name, record)


def _place(source: Path, target: Path) -> None:
    """`source` at `target` without copying where the file system allows (a checkpoint can be gigabytes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _digest(files: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for arcname, path in sorted(files.items()):
        h.update(arcname.encode() + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _wait_ready(cfg: Config, ref: str, before: int, url: str, retry: kaggle_api.Retry) -> int:
    """The number of the version after `before` once Kaggle has it ready; a UserError when Kaggle says it
    failed or is still at it after READY_TIMEOUT_S."""
    poll, said = Poll(READY_TIMEOUT_S, cfg.submit.poll_interval_s), False
    while True:
        state = kaggle_datasets.dataset_state(ref, retry)
        if state is not None and state.status is DatasetStatus.FAILED:
            raise UserError(f"Kaggle could not process {ref} (status failed): see {url}, then "
                            "upload again with --force")
        if state is not None and state.status is DatasetStatus.READY and state.version > before:
            return state.version
        if not said:
            print(f"upload: Kaggle is processing {ref} ({state.status.value if state else 'not listed yet'})",
                  flush=True)
            said = True
        if not poll.wait():
            raise UserError(f"{ref} is not ready after {READY_TIMEOUT_S / 60:.0f} min: see {url}; a "
                            "notebook that attaches it before it is ready gets the previous version")


def attach_uploaded(cfg: Config, args: argparse.Namespace) -> Config:
    """`submit --run NAME` (make submit RUN=NAME): the settings of a kernel that generates from run NAME as
    `upload` put it on Kaggle, i.e. kernel.checkpoint_from=dataset:<its recorded dataset>."""
    if not getattr(args, "run", None):
        return cfg
    if cfg.kernel.checkpoint_from:
        raise UserError(f"--run {args.run} and kernel.checkpoint_from={cfg.kernel.checkpoint_from} both say "
                        "which run to generate from: give one of them")
    store = Uploads(cfg.submissions_dir)
    record = store.get(run_record(args.run))
    if record is None:
        raise UserError(f"run {args.run} was never uploaded from here (no record in {store.path}): "
                        f"make upload RUN={args.run} first")
    print(f"submit: generating from run {args.run} as uploaded: {record.ref} version {record.version} "
          f"({record.file}, step {record.step:,})")
    return dataclasses.replace(cfg, kernel=dataclasses.replace(cfg.kernel, checkpoint_from=record.source))
