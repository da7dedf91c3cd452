"""The kernel stage: kernels/<slug>/ = kernel-metadata.json + a notebook that runs this pipeline on Kaggle.

The notebook carries the pipeline's own code (the package as a base64 zip, unpacked at run time and
put first on sys.path): no pip install, no internet, and exactly the code that built it. Its settings
(kernel.preset plus the kernel.set items) are resolved and checked here and baked in as TOML, so a bad setting
fails now rather than hours into a Kaggle run. The cells are one-liners over the stages and
pipeline/notebook/runtime.py. The folder never holds credentials: only the user name goes into the id.
"""
from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import nbformat

from ..config import Config, jobs, load_config
from ..config.jobs import TrainSession
from ..datasets.store import weights_dataset
from ..engine.errors import UserError
from ..engine.fingerprint import iter_files
from ..engine.keys import PACKAGE_ROOT
from ..engine.text import slug
from . import cells
from .cells import CARRIED_DISTRIBUTIONS

KAGGLE_OUTPUT = Path("/kaggle/working/images.zip")  # where the competition takes the submission from
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same code gives the same notebook


def build(cfg: Config, out: Path) -> str:
    kcfg = kernel_settings(cfg)
    meta = metadata(cfg, cfg.kernel.username or _username())
    payload, n_files = code_payload()
    nb = cells.notebook(cells.Texts(cfg, kcfg), payload, n_files)
    nbformat.validate(nb)
    out.mkdir(parents=True)
    (out / "kernel-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    nbformat.write(nb, str(out / meta["code_file"]))
    if not cfg.kernel.weights_dataset and weights_dataset(cfg):
        print(f"kernel: attaching the FID weights of make upload-weights ({weights_dataset(cfg)}), as "
              "kernel.weights_dataset is empty")
    return (f"{meta['id']}: {len(nb.cells)} cells carrying {n_files} pipeline files "
            f"({len(payload) // 1024} KiB), settings {cfg.kernel.preset}")


def kernel_settings(cfg: Config) -> Config:
    """The settings the notebook runs with: kernel.preset, then the kernel.set items; the [kernel] section
    stays the builder's (accelerator, clock, launcher, job describe the kernel being built), and a train
    kernel's run has the builder's train.sessions (`make train-kaggle SESSIONS=N`)."""
    k, job = cfg.kernel, cfg.kernel.job
    kcfg = replace(load_config(k.preset, k.set), kernel=k)
    if kcfg.zip_path != KAGGLE_OUTPUT:
        raise UserError(f"kernel.preset '{k.preset}' writes {kcfg.zip_path}, but Kaggle takes the "
                        f"submission from {KAGGLE_OUTPUT}: set paths.submissions = \"/kaggle/working\" in it")
    if job.submitted and k.enable_internet:
        raise UserError("kernel.enable_internet=true: a notebook that is submitted runs offline (the "
                        "competition's rule); internet is allowed for a train kernel (kernel.role=train)")
    if isinstance(job, TrainSession):
        if job.n > cfg.train.sessions:
            raise UserError(f"kernel.session={job.n} is past train.sessions={cfg.train.sessions}: set "
                            f"train.sessions to the run's number of sessions")
        kcfg = replace(kcfg, train=replace(kcfg.train, sessions=cfg.train.sessions))
    return kcfg


def _username() -> str:
    from ..kaggle import api as kaggle_api

    try:
        return kaggle_api.username()
    except UserError as exc:
        raise UserError(f"{exc} (or set kernel.username to build the kernel without credentials)") from None


def metadata(cfg: Config, owner: str) -> dict:
    """kernel-metadata.json as the `kaggle kernels push` command reads it."""
    k = cfg.kernel
    if slug(k.kernel_title) != k.kernel_slug:  # Kaggle names a new notebook after its title, not its id
        raise UserError(f"kernel.title '{k.title}' would make Kaggle call the notebook "
                        f"'{slug(k.kernel_title)}', not '{k.kernel_slug}' (kernel.slug '{k.slug}'): make the "
                        "two match")
    return {
        "id": f"{owner}/{k.kernel_slug}",
        "title": k.kernel_title,
        "code_file": f"{k.kernel_slug}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": k.is_private,
        "enable_gpu": bool(k.machine_shape),
        "enable_tpu": False,
        "enable_internet": k.enable_internet,
        "dataset_sources": dataset_sources(cfg),
        "competition_sources": [cfg.download.competition],
        "kernel_sources": kernel_sources(cfg, owner),
        "model_sources": [],
        # Without a shape, enable_gpu has been given a P100, where today's Kaggle torch cannot run at all.
        **({"machine_shape": k.machine_shape} if k.machine_shape else {}),
    }


def kernel_sources(cfg: Config, owner: str) -> list[str]:
    """The kernels whose output this one attaches: the previous session's, or the run to generate from."""
    source = cfg.kernel.job.attaches(cfg.kernel)
    if not source or jobs.dataset(source):
        return []
    return [source if "/" in source else f"{owner}/{source}"]


def dataset_sources(cfg: Config) -> list[str]:
    """The datasets this kernel attaches: the FID weights (kernel.weights_dataset, else the dataset `make
    upload-weights` recorded) and an uploaded run to generate from (kernel.checkpoint_from=dataset:...)."""
    run = jobs.dataset(cfg.kernel.job.attaches(cfg.kernel))
    return [ref for ref in dict.fromkeys((weights_dataset(cfg), run)) if ref]


def code_payload() -> tuple[str, int]:
    """The pipeline package's sources (.py and preset .toml) and the carried distributions (their modules,
    METADATA and LICENSE) as a deterministic base64 zip, and the number of files in it."""
    files = {f"pipeline/{p.relative_to(PACKAGE_ROOT).as_posix()}": p
             for p in iter_files(PACKAGE_ROOT) if p.suffix in (".py", ".toml")}
    for name in CARRIED_DISTRIBUTIONS:
        files.update(_distribution_files(name))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in sorted(files.items()):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return base64.b64encode(buf.getvalue()).decode("ascii"), len(files)


def _distribution_files(name: str) -> dict[str, Path]:
    """An installed distribution's .py files plus its METADATA and LICENSE, by their path in site-packages."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"the kernel carries {name}, which is not installed here: pip install -e . "
                        "(or make setup) first") from None
    wanted = [f for f in dist.files or [] if f.suffix == ".py" and not f.as_posix().startswith("..")
              or f.name in ("METADATA", "LICENSE") and f.parent.name.endswith(".dist-info")]
    return {f.as_posix(): Path(dist.locate_file(f)) for f in wanted}
