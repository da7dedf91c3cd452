"""What many tests share: tiny real JPEGs, settings that point every path into a temp folder, CLI arguments,
and the one-line-error check. Imported as `from helpers import ...` (tests/ is on sys.path)."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from pipeline import plugins
from pipeline.config import Config, load_config
from pipeline.generate import provenance

if TYPE_CHECKING:
    from torch import nn

    from pipeline.training.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
plugins.load()  # as every entry point does: the tests, and the processes they spawn, see every family


def make_jpegs(folder: Path, n: int, size: int = 32, seed: int = 0, mode: str = "RGB",
               prefix: str = "img") -> list[Path]:
    """`n` smooth random JPEGs of size x size (smooth so that JPEG keeps them recognisable)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(coarse, "RGB").resize((size, size), Image.BILINEAR)
        path = folder / f"{prefix}{i:04d}.jpg"
        img.convert(mode).save(path, "JPEG", quality=95)
        paths.append(path)
    return paths


def tiny_config(tmp_path: Path, *overrides: str, preset: str = "demo") -> Config:
    """The demo preset with data and submissions under tmp_path, plus `section.key=value` overrides."""
    base = [f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}"]
    return load_config(preset, [f'{o.split("=", 1)[0]}="{o.split("=", 1)[1]}"'
                                if o.startswith("paths.") else o
                                for o in base] + list(overrides))


def cli(base: Path, stage: str, *sets: str, preset: str = "demo") -> list[str]:
    """argv for `python -m pipeline <stage>` (or main()) with data and submissions under `base`, plus
    overrides."""
    paths = (f'paths.data="{base / "data"}"', f'paths.submissions="{base / "submissions"}"')
    return [stage, "--config", preset, *[arg for s in (*paths, *sets) for arg in ("--set", s)]]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The error line of a CLI call that failed as a user error: exactly one, no traceback (progress bars,
    which redraw with \\r, and retry notes may surround it)."""
    err = capsys.readouterr().err
    lines = [line for line in re.split(r"[\r\n]+", err) if ": error: " in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- the model families at a size their tests train in seconds --------------------------------------------
# The run: 32 px crops of the 40 px test images, batch 2, one epoch, every step logged (so losses can be
# compared step by step), a grid and a checkpoint every 2 steps, no clock budget, on the CPU (exact,
# repeatable arithmetic).
TINY_RUN = ("train.image_size=32", "train.batch_size=2", "train.epochs=1", "train.log_every=1",
            "train.sample_every=2", "train.checkpoint_every=2", "train.keep_last=10",
            "train.time_budget_min=0", "hardware.workers=1", "hardware.device=cpu")
# Each family's own section made tiny. CUT: five residual blocks, the smallest generator whose encoder holds
# the paper's layers (res5 is its last).
TINY_NETWORKS: dict[str, dict[str, object]] = {
    "cyclegan": {"ngf": 4, "ndf": 4, "n_blocks": 1, "pool_size": 3},
    "dcgan": {"width": 4, "z_dim": 8},
    "cut": {"ngf": 4, "ndf": 4, "n_blocks": 5, "mlp_width": 32, "num_patches": 64},
    "pix2pix": {"ngf": 4, "ndf": 4},
    "gan": {"image_size": 32, "hidden": 8, "z_dim": 8},
    "wgan": {"width": 4, "z_dim": 8, "n_critic": 2},
    "cgan": {"width": 4, "z_dim": 8},
    "progan": {"max_size": 16, "z_dim": 8, "width": 4, "max_width": 8, "batch": "4:2,16:4",
               "images_per_phase": 4},
    # Two steps, one block, narrow everything: the smallest bridge with every part (PatchNCE on three layers).
    "unsb": {"steps": 2, "ngf": 4, "ndf": 4, "n_blocks": 1, "d_layers": 1, "mlp_width": 4, "num_patches": 8,
             "nce_layers": "input, down2, res1"},
}
# Where a family's tests train otherwise than TINY_RUN says (gan and wgan: two epochs, a checkpoint between).
TINY_RUN_OF: dict[str, tuple[str, ...]] = {
    "gan": ("train.image_size=64", "train.epochs=2", "train.checkpoint_every=3"),
    "wgan": ("train.epochs=2", "train.checkpoint_every=3"),
    "cgan": ("train.batch_size=4",),
    "progan": ("train.image_size=64", "train.checkpoint_every=3"),
    "unsb": ("train.batch_size=1",),
}


def tiny_networks(family: str) -> tuple[str, ...]:
    """The `section.key=value` items that make `family`'s networks tiny (TINY_NETWORKS)."""
    return tuple(f"{family}.{key}={value}" for key, value in TINY_NETWORKS[family].items())


def tiny_settings(family: str, *overrides: str) -> tuple[str, ...]:
    """The overrides that train `family` tiny: `train.model`, the tiny run (TINY_RUN, and TINY_RUN_OF where
    the family's tests train otherwise), its tiny networks, then `overrides` (later items win)."""
    return (f"train.model={family}", *TINY_RUN, *TINY_RUN_OF.get(family, ()), *tiny_networks(family),
            *overrides)


# CycleGAN and DCGAN tiny on the tiny run, whichever train.model names (the demo preset's is cyclegan).
TINY = (*TINY_RUN, *tiny_networks("cyclegan"), *tiny_networks("dcgan"))


# The kaggle preset made tiny for the notebooks the tests run: 32 px demo data (6 paintings, 10 photos), a
# one-block ResNet CycleGAN on the CPU, zips of 5 to 20 images. Each test adds how long it trains.
TINY_KAGGLE = ("download.image_size=32", "download.expect_monet=6", "download.expect_photos=10",
               "augment.variants=1", "cyclegan.generator=resnet", "cyclegan.ngf=4", "cyclegan.n_blocks=1",
               "cyclegan.ndf=4", "cyclegan.d_layers=1", "train.image_size=32", "hardware.device=cpu",
               "zip.min_images=5", "zip.max_images=20", "zip.image_size=32", "generate.count=10")


# The generate stage small: 32 px everywhere, a ragged last batch (12 = 5 + 5 + 2), a generator small enough
# for a CPU test, on the CPU even where a GPU exists (exact fp32 references; the GPU path has its own test).
TINY_GENERATE = ("zip.image_size=32", "zip.min_images=1", "zip.max_images=50", "generate.batch_size=5",
                 "cyclegan.ngf=4", "cyclegan.n_blocks=1", "hardware.workers=2", "hardware.device=cpu")


# push and submit against the fake Kaggle: a zip of 3 to 10 images of 32 px, polled and retried at once.
TINY_SUBMIT = ("zip.min_images=3", "zip.max_images=10", "zip.image_size=32", "generate.count=5",
               "submit.poll_interval_s=0.01", "submit.retry_delay_s=0")


# What the notebook's zip stage writes into images.zip's comment: the run that made the images.
KERNEL_RUN = provenance.Provenance(run="kaggle", family="cyclegan", config_hash="0123abcd",
                                   checkpoint="last.pt", step=1834, kaggle=True)


def images_zip(tmp_path: Path, n: int = 4) -> bytes:
    """An images.zip as the notebook makes it: n JPEGs and the provenance record in its comment."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.comment = provenance.as_comment(KERNEL_RUN)
        for path in make_jpegs(tmp_path / "kernel-images", n, size=32):
            zf.write(path, path.name)
    return buf.getvalue()


def kernel_set(*items: str) -> str:
    """The --set item that gives a notebook these overrides: kernel.set as a TOML list."""
    return "kernel.set=" + json.dumps(list(items))


def write_competition(folder: Path) -> Path:
    """The competition's folder as a notebook sees it under /kaggle/input: 6 paintings, 10 photos, 32 px."""
    from pipeline.data.demo import write_demo

    write_demo(folder, 6, 10, 32, seed=0, workers=1)
    return folder


def make_data(tmp_path: Path, paintings: int = 8, photos: int = 10) -> None:
    """Paintings and photos of 40 px where the demo preset reads them."""
    make_jpegs(tmp_path / "data" / "augmented" / "monet", paintings, size=40)
    make_jpegs(tmp_path / "data" / "raw" / "photo_jpg", photos, size=40, seed=1, prefix="photo")


def make_trainer(name: str, rt: Runtime, settings: dict, **train: object):
    """A family's trainer built the way the loop builds it, through the registry."""
    from pipeline.config import TrainConfig
    from pipeline.training.family import get_family

    family = get_family(name)
    t, s = TrainConfig(model=name, **train), family.settings(**settings)
    return family.trainer_class()(family, t, s, rt), family.images_per_step(t, s)


# -- training: resume and two ranks -------------------------------------------------------------------------
def losses(cfg: Config) -> list[dict[str, float]]:
    """The run's losses.csv, as numbers."""
    from pipeline.training.log import read_csv

    return [{k: float(v) for k, v in row.items()} for row in read_csv(cfg.run_dir / "losses.csv")]


@dataclass(frozen=True)
class Resumed:
    uninterrupted: dict  # the models of the uninterrupted run's last checkpoint
    resumed: dict  # and of the resumed run's
    out: str  # what the resumed run printed


def resume_from_step(cfg: Config, capsys: pytest.CaptureFixture[str], step: int = 3,
                     meanwhile: Callable[[Path], None] = lambda checkpoint: None) -> Resumed:
    """Train cfg to its end; drop every checkpoint after `step`, as if the run had died right after it
    (`meanwhile` is then called with that step's checkpoint); train again. The resumed run says so and logs
    the uninterrupted run's losses row for row."""
    from pipeline.training import checkpoint
    from pipeline.training import loop as train

    train.build(cfg, cfg.run_dir)
    uninterrupted = losses(cfg)
    final = checkpoint.read(cfg.run_dir / "last.pt")["models"]
    for path in [p for p in checkpoint.history(cfg.run_dir) if checkpoint.read(p)["step"] > step] \
            + [cfg.run_dir / "last.pt"]:
        path.unlink()
    meanwhile(cfg.run_dir / f"ckpt_{step:06d}.pt")
    capsys.readouterr()
    train.build(cfg, cfg.run_dir)
    out = capsys.readouterr().out
    assert f"resuming from step {step}" in out
    resumed = losses(cfg)
    assert [r["step"] for r in resumed] == [r["step"] for r in uninterrupted]
    for a, b in zip(uninterrupted[step:], resumed[step:], strict=True):
        for key in a.keys() - {"seconds"}:
            assert b[key] == pytest.approx(a[key], abs=1e-6), (a["step"], key)
    return Resumed(final, checkpoint.read(cfg.run_dir / "last.pt")["models"], out)


def assert_same_weights(a: dict, b: dict) -> None:
    """Every tensor of every network equal, bit for bit."""
    import torch

    for net in a:
        for key, value in a[net].items():
            assert torch.equal(value, b[net][key]), (net, key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank: int, world_size: int, port: int, tmp_path: Path, options: tuple[str, ...]) -> None:
    import torch

    from pipeline.stages import STAGES
    from pipeline.training.family import get_family

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    built = []
    cfg = tiny_config(tmp_path, *options)
    family = get_family(cfg.train.model)

    class Recorded(family.trainer_class()):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    family.trainer_class = lambda: Recorded  # this child process's registry only
    STAGES["train"].run(cfg)
    torch.save({n: net.state_dict() for n, net in built[0].nets.items()}, tmp_path / f"rank{rank}.pt")


def train_two_ranks(tmp_path: Path, options: tuple[str, ...]) -> list[dict]:
    """The train stage under two gloo processes (any family, by its options); each rank's final weights. The
    ranks are forked from this one, torch and the pipeline already imported: two new interpreters would
    spend more time importing them than training."""
    import torch
    import torch.multiprocessing as mp

    mp.start_processes(_ddp_rank, args=(2, free_port(), tmp_path, options), nprocs=2, start_method="fork")
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


# -- a child `python -m pipeline` paused at a chosen point, and killed there ---------------------------------
@dataclass(frozen=True)
class Pause:
    """Where a child pipeline stops (tests/paused_pipeline.py): once `target` ("module:function" or
    "module:Class.method") has returned `calls` times, it writes `marker` and sleeps while the marker exists.
    A test that waits for the marker kills the child at that point, however loaded the machine."""
    target: str
    calls: int
    marker: Path

    def argv(self, *args: str) -> list[str]:
        """The command line of `python -m pipeline args` that stops here."""
        return [sys.executable, str(REPO / "tests" / "paused_pipeline.py"), self.target, str(self.calls),
                str(self.marker), *args]

    def wait(self, proc: subprocess.Popen, log: Path, timeout_s: float = 300) -> None:
        """Return once the child is paused; fail if it ended first, with the end of its stderr (`log`)."""
        deadline = time.monotonic() + timeout_s
        while not self.marker.exists():
            assert proc.poll() is None, (f"ended (exit {proc.returncode}) before pausing after "
                                         f"{self.target}: " + log.read_text(errors="replace")[-2000:])
            assert time.monotonic() < deadline, f"not paused after {self.target} in {timeout_s:g} s"
            time.sleep(0.01)

    def release(self) -> None:
        """Let the child go on."""
        self.marker.unlink()


def after_step(step: int, marker: Path) -> Pause:
    """Paused once training step `step` is logged (with train.log_every=1: once its losses.csv row is)."""
    return Pause("pipeline.training.log:TrainLog.row", step, marker)


def kill_then_resume(data: Path, run_dir: Path, sets: Iterable[str], total: int, kill_after: int) -> str:
    """`python -m pipeline train` on the demo preset with `sets`, killed with SIGKILL once step `kill_after`
    is logged (past a checkpoint, before the next), and a half-written checkpoint planted, as a kill mid-write
    leaves; then run again to its end: it resumes from that checkpoint, logs every step once and leaves
    nothing half-written. Returns the second run's output."""
    from pipeline.training import checkpoint
    from pipeline.training.log import read_csv

    # checkpoints by step alone: one by the clock (the demo preset's 30 s) could land on `kill_after`
    settings = (f"paths.data={data}", "train.checkpoint_every_s=3600", *sets)
    args = ["train", "--config", "demo", *[a for s in settings for a in ("--set", s)]]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pause, log = after_step(kill_after, data.parent / "paused"), data.parent / "killed.stderr"
    with open(log, "wb") as err:  # a file, not a pipe: a full pipe would stall the child
        proc = subprocess.Popen(pause.argv(*args), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        pause.wait(proc, log)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert [int(r["step"]) for r in read_csv(run_dir / "losses.csv")] == list(range(1, kill_after + 1))
    saved = checkpoint.read(checkpoint.history(run_dir)[0])["step"]
    assert 0 < saved < kill_after < total, "kill_after should lie between two checkpoints, before the end"
    (run_dir / ".ckpt_999999.pt.tmp-killed").write_bytes(b"half a checkpoint")
    done = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from step {saved}" in done.stdout and not list(run_dir.glob(".*.tmp-*"))
    assert checkpoint.read(run_dir / "last.pt")["step"] == total
    assert [int(r["step"]) for r in read_csv(run_dir / "losses.csv")] == list(range(1, total + 1))
    return done.stdout


def killed_and_reference(tmp_path: Path, sets: Iterable[str], total: int) -> tuple[Path, Path]:
    """The run folders of the same settings trained once uninterrupted (`reference`) and once killed after
    step 5 and resumed (`killed`, kill_then_resume): a family's kill test compares what the two saved."""
    from pipeline.training import loop

    reference = tiny_config(tmp_path, *sets, "train.run=reference")
    assert f"{total}/{total} steps" in loop.build(reference, reference.run_dir)
    killed = tmp_path / "data" / "runs" / "killed"
    kill_then_resume(tmp_path / "data", killed, (*sets, "train.run=killed"), total=total, kill_after=5)
    return killed, reference.run_dir


# -- generate: a saved generator, the memorisation guard ----------------------------------------------------
def save_generator(cfg: Config, seed: int = 0) -> nn.Module:
    """A randomly initialised generator of cfg.train saved as the run's last.pt, the way training saves it."""
    import torch

    from pipeline.training import checkpoint
    from pipeline.training.family import get_family

    torch.manual_seed(seed)
    family = get_family(cfg.train.model)
    G = family.build_generator(cfg.train, cfg.model_settings).eval()
    if not family.takes_photos:  # DCGAN's N(0, 0.02) init makes near-flat images: widen it so z shows
        for m in G.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):
                torch.nn.init.normal_(m.weight, 0.0, 0.3)
    checkpoint.save(cfg.checkpoint_path, {**checkpoint.header(cfg.train, cfg.model_settings, 0),
                                          "models": {family.generator_key: G.state_dict()}})
    return G


def planted_copy_is_made_again(plain: Config, guarded: Config, capsys: pytest.CaptureFixture[str]) -> str:
    """Generate with `plain`, plant one of its images among the training Monets (as if the model had
    memorised it), generate again with `guarded` (the guard on): that image alone is made again, the others
    stay byte for byte. Returns the name of the planted image."""
    from pipeline.images import list_images
    from pipeline.stages import STAGES

    before = {p.name: p.read_bytes() for p in list_images(STAGES["generate"].run(plain))}
    copied = sorted(before)[len(before) // 2]
    (plain.raw_dir / "monet_jpg" / "monet_copy.jpg").write_bytes(before[copied])
    capsys.readouterr()
    after = {p.name: p.read_bytes() for p in list_images(STAGES["generate"].run(guarded))}
    assert "1 near-copies made again, 0 removed" in capsys.readouterr().out
    assert sorted(after) == sorted(before)
    assert after[copied] != before[copied] and all(after[n] == before[n] for n in before if n != copied)
    return copied
