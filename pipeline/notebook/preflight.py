"""The notebook's first check: what the run will need, verified before any work.

A Kaggle run that dies hours in (no GPU, a GPU the installed torch cannot drive, no competition input,
a missing package, a full disk) costs the user a day and a GPU quota; these checks fail it within a
minute, in one line that says what to do. The facts about the GPUs come in as data (`TorchFacts`), so
tests can play a P100 or a T4 x2 on a machine that has neither.
"""
from __future__ import annotations

import importlib.metadata
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, jobs
from ..data.sources import dir_source
from ..engine.errors import UserError
from ..metrics.features import WEIGHTS_FILE
from ..training import checkpoint
from ..training.family import get_family
from ..training.state import read_sessions

# The packages the pipeline imports from the image, with the major versions it runs with
# (pyproject.toml's ranges; tests/test_kernel.py checks that kernels/kaggle-image.toml satisfies them).
REQUIRED: dict[str, tuple[int, int]] = {  # distribution -> (lowest major, first major refused)
    "torch": (2, 3), "torchvision": (0, 1), "numpy": (1, 3), "scipy": (1, 2), "pillow": (10, 100),
    "albumentations": (2, 3), "matplotlib": (3, 4), "tqdm": (4, 5),
}
CHECKPOINT_RESERVE = 2**30  # checkpoints, logs and sample grids, besides the images
ACCELERATOR_NAMES = {"t4x2": "GPU T4 x2"}
PROMISED_GPUS = {"t4x2": 2}  # machine_shape NvidiaTeslaT4 is GPU T4 x2 (a single T4 is no longer offered)
SETTINGS_HELP = "Settings → Accelerator"
# What makes a folder a run: one of these beside a config.toml. A train kernel leaves last.pt; a run uploaded
# from another machine (`make upload`) carries only the checkpoint generate uses, best.pt where it was kept.
RUN_CHECKPOINTS = ("last.pt", "best.pt")


class PreflightError(UserError):
    """A check failed: the notebook stops here, before any work."""


@dataclass(frozen=True)
class Gpu:
    name: str
    capability: tuple[int, int]

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"


@dataclass(frozen=True)
class TorchFacts:
    version: str  # torch.__version__, e.g. 2.10.0+cu128
    arch_list: tuple[str, ...]  # the GPU code the build carries: sm_XY (binary) and compute_XY (PTX)
    gpus: tuple[Gpu, ...]


def torch_facts() -> TorchFacts:
    import torch

    gpus = tuple(Gpu(torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
                 for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else ()
    return TorchFacts(torch.__version__, tuple(torch.cuda.get_arch_list()) if gpus else (), gpus)


def runs_on(gpu: Gpu, arch_list: tuple[str, ...]) -> bool:
    """Whether a build carrying `arch_list` has code for `gpu`: a cubin sm_XY runs on X.Y and later minors of
    major X; PTX compute_XY is compiled at load time for any X.Y or newer."""
    for arch in arch_list:
        found = re.fullmatch(r"(sm|compute)_(\d+)(\d)([a-z]?)", arch)
        if not found:
            continue
        kind, major, minor, specific = found[1], int(found[2]), int(found[3]), found[4]
        if kind == "sm" and major == gpu.capability[0] and (minor == gpu.capability[1] or
                                                            minor < gpu.capability[1] and not specific):
            return True
        if kind == "compute" and not specific and (major, minor) <= gpu.capability:
            return True
    return False


def check_gpus(cfg: Config, facts: TorchFacts) -> str:
    """One line about the GPUs, or a PreflightError when the kernel was built for a GPU it cannot use. Fewer
    GPUs than the machine shape promised are said in that line, not refused: training runs on one process
    per visible GPU (kernel.processes=0), so it uses what is there."""
    accelerator = cfg.kernel.accelerator
    if accelerator == "none":
        return ("no accelerator asked for (kernel.accelerator=none): training on the CPU with torch "
                f"{facts.version}")
    wanted = ACCELERATOR_NAMES[accelerator]
    if not facts.gpus:
        raise PreflightError(f"no GPU: this notebook was built for {wanted} "
                             f"(kernel.accelerator={accelerator}); "
                             f"choose {wanted} in {SETTINGS_HELP}, or build it with kernel.accelerator=none")
    for gpu in facts.gpus:
        if not runs_on(gpu, facts.arch_list):
            raise PreflightError(f"{gpu.name} ({gpu.sm}) is not supported by torch {facts.version} (it has "
                                 f"code for {' '.join(facts.arch_list) or 'no GPU'}): choose {wanted} in "
                                 f"{SETTINGS_HELP}")
    names, visible = sorted({g.name for g in facts.gpus}), len(facts.gpus)
    promised = PROMISED_GPUS[accelerator]
    line = (f"{visible} x {', '.join(names)} ({', '.join(sorted({g.sm for g in facts.gpus}))}) "
            f"with torch {facts.version}")
    if cfg.kernel.processes > visible:  # a process per GPU: one more than there are fails at its first step
        raise PreflightError(f"kernel.processes={cfg.kernel.processes}, but only {line} is visible: build "
                             "the kernel with kernel.processes=0 (one process per visible GPU)")
    if visible < promised:
        there = "the one there is" if visible == 1 else f"the {visible} there are"
        return f"{line}; {wanted} promises {promised}: training on {there}"
    return line


def gpu_smoke_test() -> None:
    """One real CUDA operation: a driver or build mismatch shows here, not hours later."""
    import torch

    try:
        (torch.ones(8, device="cuda") * 2).sum().item()
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:160]
        raise PreflightError(f"the GPU is visible but CUDA fails ({reason}): choose "
                             f"{ACCELERATOR_NAMES['t4x2']} in {SETTINGS_HELP} and run again") from None


def check_packages(required: dict[str, tuple[int, int]] = REQUIRED) -> str:
    found = []
    for dist, (low, high) in required.items():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise PreflightError(f"package {dist} is missing from this image; this notebook needs {dist} "
                                 f"{low}.x: pin the notebook's environment to the original image in "
                                 "Settings → Environment, or rebuild the kernel") from None
        major = int(re.match(r"\d+", version)[0])
        if not low <= major < high:
            raise PreflightError(f"package {dist} {version} is here but this notebook runs with {dist} "
                                 f"{low}.x{f'-{high - 1}.x' if high - 1 > low else ''}: pin the notebook's "
                                 "environment to the original image in Settings → Environment")
        found.append(f"{dist} {version}")
    return ", ".join(found)


def check_input(cfg: Config) -> tuple[str, int, int]:
    """The competition's folders and their sizes in bytes: (line, paintings' bytes, photos' bytes)."""
    try:
        folder = dir_source(cfg)
    except UserError as exc:  # kaggle-input found nothing: the line lists what is mounted instead
        raise PreflightError(str(exc)) from None
    if folder is None:
        return f"data from download.source={cfg.download.source}", 0, 0
    sizes = {}
    for sub in ("monet_jpg", "photo_jpg"):
        files = [p for p in (folder / sub).glob("*") if p.is_file()] if (folder / sub).is_dir() else []
        if not files:
            raise PreflightError(f"the competition data is not attached: no images in {folder / sub}; add it "
                                 f"with Add Input → Competitions → {cfg.download.competition}")
        sizes[sub] = (len(files), sum(p.stat().st_size for p in files))
    line = f"{folder}: {sizes['monet_jpg'][0]:,} paintings, {sizes['photo_jpg'][0]:,} photos"
    return line, sizes["monet_jpg"][1], sizes["photo_jpg"][1]


def check_weights(cfg: Config) -> str:
    if cfg.score.weights:
        return f"FID weights {cfg.score.weights}: scoring and the memorisation guard can run"
    if cfg.generate.max_memorization > 0:
        raise PreflightError(f"generate.max_memorization={cfg.generate.max_memorization} needs the FID "
                             f"weights {WEIGHTS_FILE}: attach a dataset holding them "
                             "(kernel.weights_dataset), or build the kernel with generate.max_memorization=0")
    return f"no {WEIGHTS_FILE} attached: scoring will be skipped"


def expected(cfg: Config) -> str:
    """The input holding the run this notebook needs ("" for none): the previous session's kernel, or
    kernel.checkpoint_from (a kernel's owner/slug, or dataset:owner/slug for an uploaded run)."""
    return cfg.kernel.job.attaches(cfg.kernel)


def find_run(inputs: Path, source: str) -> Path | None:
    """The run folder (a RUN_CHECKPOINTS file beside a config.toml) anywhere among the inputs, preferring the
    one under the source's own folder (a kernel's output in `inputs/notebooks/<owner>/<slug>/`, a dataset in
    `inputs/datasets/<owner>/<slug>/`, either in the older flat `inputs/<slug>/`); None when no input holds
    one."""
    found = sorted({p.parent for name in RUN_CHECKPOINTS for p in inputs.rglob(name)
                    if (p.parent / "config.toml").is_file()})
    mine = [f for f in found if _from_source(f.relative_to(inputs).parts, source)]
    return (mine or found or [None])[0]


def _from_source(parts: tuple[str, ...], source: str) -> bool:
    """Whether a path under the inputs (its parts) lies in the folder Kaggle mounts `source` in:
    notebooks/<owner>/<slug>/... for a kernel (any owner where `source` is a bare slug),
    datasets/<owner>/<slug>/... for a dataset, or the flat <slug>/..."""
    dataset = jobs.dataset(source)
    owner, _, slug = (dataset or source).rpartition("/")
    kind = "datasets" if dataset else "notebooks"
    today = len(parts) >= 3 and parts[0] == kind and parts[2] == slug and owner in ("", parts[1])
    return today or parts[:1] == (slug,)


def check_attached(cfg: Config, inputs: Path) -> tuple[Path, str] | None:
    """The attached run this notebook needs and one line about it; a PreflightError that says which kernel to
    attach or which setting differs. None where the notebook needs no run."""
    source = expected(cfg)
    if not source:
        return None
    folder, dataset = find_run(inputs, source), jobs.dataset(source)
    what = "kernel.checkpoint_from" if cfg.kernel.job.submitted else "the previous session"
    if folder is None and dataset:
        raise PreflightError(f"no run of {source} is attached ({what}): add it with Add Input → Datasets → "
                             f"{dataset} (it must hold <run>/config.toml beside last.pt or best.pt, as "
                             "`make upload` puts them)")
    if folder is None:
        raise PreflightError(f"no run of {source} is attached ({what}): add it with Add Input → Notebooks → "
                             f"{source} (its output must hold runs/<run>/last.pt; did it finish?)")
    ckpt = next(folder / name for name in RUN_CHECKPOINTS if (folder / name).is_file())
    try:
        header = checkpoint.read(ckpt, map_location="cpu", mmap=True)
    except ValueError as exc:
        again = "upload the run again (make upload)" if dataset else f"run {source} again"
        raise PreflightError(f"{ckpt} from {source} is unreadable ({exc}): {again}") from None
    family, settings = get_family(cfg.train.model), cfg.model_settings
    now = {"model": cfg.train.model, **family.architecture(cfg.train, settings)}
    saved = {"model": header["kind"], **header["architecture"]}
    changed = [f"{k}: {saved.get(k)!r} there, {now.get(k)!r} here" for k in sorted(set(saved) | set(now))
               if saved.get(k) != now.get(k)]
    # A run uploaded from another machine was trained with settings of its own: generate takes them from its
    # checkpoint (attached.generate_from), whatever this kernel's preset says.
    if changed and not dataset:
        raise PreflightError(f"the run attached from {source} was trained with other model settings "
                             f"({'; '.join(changed)}): build this kernel with the same train.model and "
                             "family settings (kernel.preset, kernel.set)")
    sessions = read_sessions(folder)
    done = f", {sessions[-1]['line']}" if sessions else ""
    return folder, f"{folder}: {header['kind']} at step {header['step']:,}{done}"


def disk_needed(cfg: Config, monet_bytes: int, photo_bytes: int) -> int:
    """Bytes the run writes into working/: the data copy, the augmented paintings, the images and the zip."""
    images = photo_bytes if get_family(cfg.train.model).takes_photos else cfg.generate.count * 100_000
    augmented = monet_bytes * (cfg.augment.variants + 1)
    job = cfg.kernel.job
    if not job.submitted:  # trains, generates nothing
        return monet_bytes + photo_bytes + augmented + CHECKPOINT_RESERVE
    if not job.trains:  # generates, trains nothing
        return monet_bytes + photo_bytes + 2 * images
    return monet_bytes + photo_bytes + augmented + 2 * images + CHECKPOINT_RESERVE


def check_disk(cfg: Config, needed: int) -> str:
    working = cfg.zip_path.parent
    working.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(working).free
    if free < needed:
        raise PreflightError(f"only {free / 2**30:.1f} GB free in {working}, and this run writes about "
                             f"{needed / 2**30:.1f} GB: delete earlier outputs there (or lower "
                             "augment.variants)")
    return f"{free / 2**30:.1f} GB free in {working}, about {needed / 2**30:.1f} GB needed"


def preflight(cfg: Config, inputs: Path, facts: TorchFacts | None = None) -> None:
    """Every check, one line each; the first failure stops the notebook with what to do. `inputs`: the folder
    Kaggle mounts the notebook's inputs in (/kaggle/input)."""
    facts = facts or torch_facts()
    print(f"preflight: accelerator  {check_gpus(cfg, facts)}")
    if facts.gpus and cfg.kernel.accelerator != "none":
        gpu_smoke_test()
    print(f"preflight: packages     {check_packages()}")
    line, monet_bytes, photo_bytes = check_input(cfg)
    print(f"preflight: input        {line}")
    found = check_attached(cfg, inputs)
    if found is not None:
        print(f"preflight: attached     {found[1]}")
    print(f"preflight: weights      {check_weights(cfg)}")
    print(f"preflight: disk         {check_disk(cfg, disk_needed(cfg, monet_bytes, photo_bytes))}")
    print("preflight: ok")
