"""The kernel stage: kernels/<slug>/ = kernel-metadata.json + a notebook that runs this pipeline on Kaggle.

The notebook carries the pipeline's own code (the package as a base64 zip, unpacked at run time and
put first on sys.path): no pip install, no internet, and exactly the code that built it. Its settings
(kernel.preset plus kernel.set) are resolved and checked here and baked in as TOML, so a bad setting
fails now rather than hours into a Kaggle run. The cells are one-liners over the stages and
pipeline/kaggle/notebook.py. The folder never holds credentials: only the user name goes into the id.
"""
from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ..config import Config, load_config, to_toml
from ..engine.chain import PACKAGE_DIR
from ..engine.errors import UserError
from ..engine.fingerprint import iter_files

KAGGLE_OUTPUT = Path("/kaggle/working/images.zip")  # where the competition takes the submission from
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same code gives the same notebook


def build(cfg: Config, out: Path) -> str:
    kcfg = kernel_settings(cfg)
    meta = metadata(cfg, cfg.kernel.username or _username())
    payload, n_files = code_payload()
    nb = notebook(cfg, kcfg, payload, n_files)
    nbformat.validate(nb)
    out.mkdir(parents=True)
    (out / "kernel-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    nbformat.write(nb, str(out / meta["code_file"]))
    return (f"{meta['id']}: {len(nb.cells)} cells carrying {n_files} pipeline files "
            f"({len(payload) // 1024} KiB), settings {cfg.kernel.preset}")


def kernel_settings(cfg: Config) -> Config:
    """The settings the notebook runs with: kernel.preset, then the `;`-separated kernel.set items; the
    [kernel] section stays the builder's (accelerator, clock, launcher describe the kernel being built)."""
    items = [item.strip() for item in cfg.kernel.set.split(";") if item.strip()]
    kcfg = replace(load_config(cfg.kernel.preset, items), kernel=cfg.kernel)
    if kcfg.zip_path != KAGGLE_OUTPUT:
        raise UserError(f"kernel.preset '{cfg.kernel.preset}' writes {kcfg.zip_path}, but Kaggle takes the "
                        f"submission from {KAGGLE_OUTPUT}: set paths.submissions = \"/kaggle/working\" in it")
    return kcfg


def _username() -> str:
    from . import api as kaggle_api

    try:
        return kaggle_api.username()
    except UserError as exc:
        raise UserError(f"{exc} (or set kernel.username to build the kernel without credentials)") from None


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def metadata(cfg: Config, owner: str) -> dict:
    """kernel-metadata.json as the `kaggle kernels push` command reads it."""
    k = cfg.kernel
    if _slugify(k.title) != k.slug:  # Kaggle names a new notebook after its title, whatever the id says
        raise UserError(f"kernel.title '{k.title}' would make Kaggle call the notebook "
                        f"'{_slugify(k.title)}', not kernel.slug '{k.slug}': make the two match")
    return {
        "id": f"{owner}/{k.slug}",
        "title": k.title,
        "code_file": f"{k.slug}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": k.is_private,
        "enable_gpu": bool(k.machine_shape),
        "enable_tpu": False,
        "enable_internet": k.enable_internet,
        "dataset_sources": [k.weights_dataset] if k.weights_dataset else [],
        "competition_sources": [cfg.download.competition],
        "kernel_sources": [],
        "model_sources": [],
        # Without a shape, enable_gpu has been given a P100, where today's Kaggle torch cannot run at all.
        **({"machine_shape": k.machine_shape} if k.machine_shape else {}),
    }


# Pure-Python packages the pipeline imports that Kaggle's image lacks (kernels/kaggle-image.toml): the
# notebook carries the installed copies, so scoring and the memorisation guard work offline on Kaggle.
CARRIED_DISTRIBUTIONS = ("pytorch-fid",)


def code_payload() -> tuple[str, int]:
    """The pipeline package's sources (.py and preset .toml) and the carried distributions (their modules,
    METADATA and LICENSE) as a deterministic base64 zip, and the number of files in it."""
    files = {f"pipeline/{p.relative_to(PACKAGE_DIR).as_posix()}": p
             for p in iter_files(PACKAGE_DIR) if p.suffix in (".py", ".toml")}
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


def notebook(cfg: Config, kcfg: Config, payload: str, n_files: int) -> nbformat.NotebookNode:
    t, k = kcfg.train, kcfg.kernel
    accelerator = "no accelerator (CPU)" if k.accelerator == "none" else "GPU T4 x2"
    budget = (f"at most {t.time_budget_min:g} minutes" if t.time_budget_min else
              f"as long as its {k.time_limit_min:g}-minute clock allows")
    toml = to_toml(kcfg)
    settings = f"r'''\n{toml}'''" if "'''" not in toml and not toml.endswith("\\\n") else repr(toml)
    makes, grid, inputs = _what_it_makes(kcfg)
    cells = [
        new_markdown_cell(
            f"# {cfg.kernel.title}\n\n"
            "Built by `python -m pipeline kernel` (the monet-pipeline project) for the competition "
            f"*I'm Something of a Painter Myself* (`{cfg.download.competition}`). It runs the project's "
            f"own stages with the `{cfg.kernel.preset}` settings: check the competition images, augment the "
            f"Monet paintings, train a {kcfg.family.summary(kcfg.model_settings)} {budget}, {makes}, and "
            "write `/kaggle/working/images.zip`, the file the competition scores.\n\n"
            "**Running it by hand:** *Add Input* → the competition `gan-getting-started` (and, to score "
            "inside the notebook, a dataset holding `pt_inception-2015-12-05-6726825d.pth`); *Settings* → "
            f"*Accelerator* → **{accelerator}**; then *Save Version* → *Save & Run All*. Submit `images.zip` "
            "from the version's *Output*."),
        new_markdown_cell(
            "## The pipeline's code\n\nThe `pipeline` package travels inside this notebook as a zip "
            f"({n_files} files, {len(payload) // 1024} KiB of base64, in the hidden cell below), with the "
            f"pure-Python packages Kaggle's image lacks ({', '.join(CARRIED_DISTRIBUTIONS)}). It is unpacked "
            "into a temporary folder and put first on `sys.path`: nothing is installed and no internet is "
            "needed. The notebook's clock starts here."),
        _hidden(new_code_cell(
            "import time\n\nNOTEBOOK_STARTED = time.time()  # Kaggle's time limit counts from here\n\n"
            "import base64, io, os, sys, tempfile, zipfile\n\n"
            f'CODE = "{payload}"\n\n'
            'code_dir = tempfile.mkdtemp(prefix="monet-pipeline-")\n'
            "zipfile.ZipFile(io.BytesIO(base64.b64decode(CODE))).extractall(code_dir)\n"
            "sys.path.insert(0, code_dir)\n"
            "import pipeline\n"
            "assert pipeline.__file__.startswith(code_dir), "
            "f'another pipeline package shadows ours: {pipeline.__file__}'\n"
            "from pipeline.kaggle import notebook\n"
            "from pipeline.engine.chain import STAGES\n"
            'print(f"pipeline code unpacked to {code_dir}")')),
        new_markdown_cell(
            "## Settings\n\nResolved when the notebook was built (the preset plus its overrides). Paths "
            "under `/kaggle` follow `$KAGGLE_ROOT` when it is set, so the same notebook also runs in a local "
            "folder laid out like Kaggle's. The FID weights are looked for in the attached inputs."),
        new_code_cell(
            f"SETTINGS = {settings}\n\n"
            f"cfg = notebook.settings(SETTINGS, preset={cfg.kernel.preset!r})\n"
            'os.chdir(notebook.root() / "working")\n'
            "notebook.describe(cfg)"),
        new_markdown_cell(
            "## 0. preflight: what the run needs, checked first\n\nStops within a minute, in one line "
            "that says what to do, if anything is missing: the accelerator this notebook was built for "
            f"({accelerator}) and a torch that runs on it, the packages it imports, the competition input, "
            "the disk space in `/kaggle/working`, and the FID weights where a setting needs them."),
        new_code_cell("notebook.preflight(cfg)"),
        new_markdown_cell(
            "## 1. download: check the competition data\n\nEvery image under "
            "`/kaggle/input/gan-getting-started` (read-only) is checked: a decodable 256x256 RGB JPEG, the "
            "competition's counts. A manifest of the files is written beside the run's data."),
        new_code_cell('raw = STAGES["download"].run(cfg)'),
        new_markdown_cell(
            f"## 2. augment: {kcfg.augment.variants + 1}x the Monet paintings\n\nEach painting is kept "
            f"and joined by {kcfg.augment.variants} augmented variants (flip, resized crop, small rotation "
            "and colour jitter, noise), so the generator sees more than 300 examples of the style."),
        new_code_cell('augmented = STAGES["augment"].run(cfg)'),
        new_markdown_cell(
            f"## 3. train: the {t.model}\n\nThe notebook keeps its own clock: training gets Kaggle's "
            f"{k.time_limit_min:g} minutes minus the time spent so far, minus what generate + zip will take "
            f"(measured here first, on this GPU), minus a {k.margin_min:g}-minute margin"
            + (f", and at most `train.time_budget_min` = {t.time_budget_min:g} minutes"
               if t.time_budget_min else "")
            + ". It stops cleanly (a checkpoint written) when that is spent. With more than one GPU it "
            "runs one process per GPU under `torchrun` (kernel.launcher). The loss plot and the latest "
            f"sample grid ({grid}) are shown below."),
        new_code_cell("run_dir = notebook.train(cfg, NOTEBOOK_STARTED)\nnotebook.show_training(cfg)"),
        new_markdown_cell(
            f"## 4. generate and zip: the submission\n\n{inputs} through the trained generator, each into a "
            "256x256 JPEG; the images are checked against the competition's rules and written flat into "
            "`/kaggle/working/images.zip`. The time both take is measured."),
        new_code_cell(
            "started = time.perf_counter()\n"
            'images = STAGES["generate"].run(cfg)\n'
            'images_zip = STAGES["zip"].run(cfg)\n'
            'print(f"generate + zip took {time.perf_counter() - started:.0f} s")'),
        new_markdown_cell(
            "## 5. score: local MiFID (optional)\n\nOnly when the FID Inception weights are attached as a "
            "dataset: the competition's metric computed here against the 300 Monets (it ranks runs; it is "
            "not the leaderboard number). A failure here never touches `images.zip`."),
        new_code_cell("notebook.score(cfg)"),
        new_markdown_cell(
            "## 6. tidy up\n\nKaggle keeps all of `/kaggle/working` as this notebook's output. The loose "
            "images, the data copy and the checkpoints are deleted; `images.zip`, the small plots and logs "
            "stay."),
        new_code_cell("notebook.tidy(cfg)"),
    ]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # nbformat's random ids would change the notebook on every build
    return nb


def _what_it_makes(kcfg: Config) -> tuple[str, str, str]:
    """What the notebook's texts say the model does: (the run's product, the grids' content, what generate
    feeds the generator). A photo family translates every photo; a noise family samples generate.count."""
    if kcfg.family.takes_photos:
        return "turn every photo into a Monet-style painting", "photos → Monet", "Every photo goes"
    count = f"{kcfg.generate.count:,}"
    return f"sample {count} new paintings from noise", "fixed noise → Monet", f"{count} noise vectors go"


def _hidden(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell.metadata.update({"_kg_hide-input": True, "jupyter": {"source_hidden": True}})
    return cell
