"""The Kaggle notebook's cells: one helper per section, each a heading that says what the section does and the
one-line code cell that does it (the code lives in pipeline/notebook/, tested like the rest).

The texts are written from the settings the notebook runs with, so a reader on Kaggle sees what this run
does: which family, for how long, what it makes.
"""
from __future__ import annotations

from dataclasses import dataclass

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ..config import Config, to_toml
from ..config.jobs import SweepVariant, TrainSession, dataset
from ..training.family import get_family

Cells = list[nbformat.NotebookNode]
# Pure-Python packages the pipeline imports that Kaggle's image lacks (kernels/kaggle-image.toml): the
# notebook carries the installed copies, so scoring and the memorisation guard work offline on Kaggle.
CARRIED_DISTRIBUTIONS = ("pytorch-fid",)


@dataclass(frozen=True)
class Texts:
    """What the notebook's words say about the run, from its settings."""

    cfg: Config  # the builder's settings ([kernel], the competition)
    kcfg: Config  # the settings the notebook runs with

    @property
    def accelerator(self) -> str:
        return "no accelerator (CPU)" if self.kcfg.kernel.accelerator == "none" else "GPU T4 x2"

    @property
    def budget(self) -> str:
        t, k = self.kcfg.train, self.kcfg.kernel
        return (f"at most {t.time_budget_min:g} minutes" if t.time_budget_min else
                f"as long as its {k.time_limit_min:g}-minute clock allows")

    @property
    def kind(self) -> str:
        """submit (trains, then generates), train (a session of a run) or attached (generates from a run)."""
        return self.kcfg.kernel.job.label

    @property
    def session(self) -> int:
        """Which session of its run a train kernel is (1 for the others)."""
        job = self.kcfg.kernel.job
        return job.n if isinstance(job, TrainSession) else 1

    @property
    def attaches(self) -> str:
        """The kernel whose output this notebook needs ("" for none)."""
        return self.kcfg.kernel.job.attaches(self.kcfg.kernel)

    @property
    def attached_input(self) -> str:
        """How the texts name that input: a notebook, or the dataset of a run uploaded with `make upload`."""
        uploaded = dataset(self.attaches)
        return f"the dataset `{uploaded}`" if uploaded else f"the notebook `{self.attaches}`"

    @property
    def model(self) -> str:
        return get_family(self.kcfg.train.model).summary(self.kcfg.model_settings)

    @property
    def takes_photos(self) -> bool:
        return get_family(self.kcfg.train.model).takes_photos

    @property
    def makes(self) -> str:
        """What the run makes: every photo translated, or generate.count paintings sampled from noise."""
        if self.takes_photos:
            return "turn every photo into a Monet-style painting"
        return f"sample {self.kcfg.generate.count:,} new paintings from noise"

    @property
    def grid(self) -> str:
        return "photos → Monet" if self.takes_photos else "fixed noise → Monet"

    @property
    def inputs(self) -> str:
        return "Every photo goes" if self.takes_photos else f"{self.kcfg.generate.count:,} noise vectors go"


def notebook(texts: Texts, payload: str, n_files: int) -> nbformat.NotebookNode:
    """The notebook of the kernel's role: a submission (every stage from the competition's images to
    images.zip, or generate + zip from an attached run), or one training session of a run."""
    job = texts.kcfg.kernel.job
    head = [*title(texts), *code(payload, n_files), *settings(texts), *preflight(texts), *download()]
    if isinstance(job, TrainSession):
        body = [*augment(texts), *continue_session(texts), *train(texts), *session_summary(texts),
                *(score_subset(texts) if isinstance(job, SweepVariant) else []), *tidy(texts)]
    elif not job.trains:
        body = [*attach(texts), *generate_and_zip(texts), *score(), *tidy(texts)]
    else:
        body = [*augment(texts), *train(texts), *generate_and_zip(texts), *score(), *tidy(texts)]
    cells = _numbered([*head, *body], first=len(title(texts)) + len(code(payload, n_files)) + 2)
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # nbformat's random ids would change the notebook on every build
    return nb


def title(texts: Texts) -> Cells:
    k, kcfg = texts.cfg.kernel, texts.kcfg
    what = {"submit": f"train a {texts.model} {texts.budget}, {texts.makes}, and write "
                      "`/kaggle/working/images.zip`, the file the competition scores",
            "train": f"train session {texts.session} of {kcfg.train.sessions} of one {texts.model} run (one "
                     "learning-rate schedule over every session), resuming the previous session's output, "
                     "and leave the run folder as this kernel's output for the next session or a submit "
                     "kernel",
            "attached": f"generate from the run {texts.attached_input} holds (no training here), "
                        f"{texts.makes}, and write `/kaggle/working/images.zip`, the file the competition "
                        "scores"}[texts.kind]
    inputs = ("the competition `gan-getting-started`"
              + (f" and {texts.attached_input}" if texts.attaches else ""))
    return [new_markdown_cell(
        f"# {k.kernel_title}\n\n"
        "Built by `python -m pipeline kernel` (the monet-pipeline project) for the competition *I'm "
        f"Something of a Painter Myself* (`{texts.cfg.download.competition}`). It runs the project's own "
        f"stages with the `{k.preset}` settings: {what}.\n\n"
        f"**Running it by hand:** *Add Input* → {inputs} (and, to score inside the notebook, a dataset "
        "holding `pt_inception-2015-12-05-6726825d.pth`); *Settings* → *Accelerator* → "
        f"**{texts.accelerator}**; then *Save Version* → *Save & Run All*."
        + (" Submit `images.zip` from the version's *Output*." if k.job.submitted else ""))]


def code(payload: str, n_files: int) -> Cells:
    return [
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
            "from pipeline import plugins\n"
            "from pipeline.notebook import runtime as notebook\n"
            "from pipeline.stages import STAGES\n\n"
            "plugins.load()  # the model families and the archive source, registered once\n"
            'print(f"pipeline code unpacked to {code_dir}")')),
    ]


def settings(texts: Texts) -> Cells:
    toml = to_toml(texts.kcfg)
    literal = f"r'''\n{toml}'''" if "'''" not in toml and not toml.endswith("\\\n") else repr(toml)
    return [
        new_markdown_cell(
            "## Settings\n\nResolved when the notebook was built (the preset plus its overrides). Paths "
            "under `/kaggle` follow `$KAGGLE_ROOT` when it is set, so the same notebook also runs in a "
            "local folder laid out like Kaggle's. The FID weights are looked for in the attached inputs."),
        new_code_cell(
            f"SETTINGS = {literal}\n\n"
            f"cfg = notebook.settings(SETTINGS, preset={texts.cfg.kernel.preset!r})\n"
            'os.chdir(notebook.root() / "working")\n'
            "notebook.describe(cfg)"),
    ]


def preflight(texts: Texts) -> Cells:
    return [
        new_markdown_cell(
            "## preflight: what the run needs, checked first\n\nStops within a minute, in one line that "
            "says what to do, if anything is missing: the accelerator this notebook was built for "
            f"({texts.accelerator}) and a torch that runs on it, the packages it imports, the competition "
            "input, the disk space in `/kaggle/working`, and the FID weights where a setting needs them."),
        new_code_cell("notebook.preflight(cfg)"),
    ]


def download() -> Cells:
    return [
        new_markdown_cell(
            "## download: check the competition data\n\nThe competition's input is found under "
            "`/kaggle/input` by what it holds, `monet_jpg/` and `photo_jpg/` (Kaggle mounts it at "
            "`competitions/<slug>/`, older notebooks at `<slug>/`). Every image of it (read-only) is "
            "checked: a decodable 256x256 RGB JPEG, the competition's counts. A manifest of the files is "
            "written beside the run's data."),
        new_code_cell('raw = STAGES["download"].run(cfg)'),
    ]


def augment(texts: Texts) -> Cells:
    variants = texts.kcfg.augment.variants
    return [
        new_markdown_cell(
            f"## augment: {variants + 1}x the Monet paintings\n\nEach painting is kept and joined by "
            f"{variants} augmented variants (flip, resized crop, small rotation and colour jitter, noise), "
            f"so the generator sees more than 300 examples of the style."),
        new_code_cell('augmented = STAGES["augment"].run(cfg)'),
    ]


def train(texts: Texts) -> Cells:
    t, k = texts.kcfg.train, texts.kcfg.kernel
    trains_only = not k.job.submitted
    cap = f", and at most `train.time_budget_min` = {t.time_budget_min:g} minutes" if t.time_budget_min \
        else ""
    reserve = ("" if trains_only else
               ", minus what generate + zip will take (measured here first, on this GPU)")
    schedule = (f" The run's steps were planned for {t.sessions} sessions of this length by its first "
                "session, and its learning rate follows that one plan."
                if trains_only and t.sessions > 1 else "")
    return [
        new_markdown_cell(
            f"## train: the {t.model}\n\nThe notebook keeps its own clock: training gets Kaggle's "
            f"{k.limit_min:g} minutes minus the time spent so far{reserve}, minus a {k.margin_min:g}-minute "
            f"margin{cap}.{schedule} It stops cleanly (a checkpoint written) when that is spent. With more "
            "than one GPU it runs one process per GPU under `torchrun` (kernel.launcher)."
            + ("" if trains_only else
               f" The loss plot and the latest sample grid ({texts.grid}) are shown below.")),
        new_code_cell("run_dir = notebook.train(cfg, NOTEBOOK_STARTED)"  # train kernel: shown at its end
                      + ("" if trains_only else "\nnotebook.show_training(cfg)")),
    ]


def generate_and_zip(texts: Texts) -> Cells:
    trainer = "notebook.name_trainer(cfg)\n" if texts.kind == "attached" else ""
    return [
        new_markdown_cell(
            f"## generate and zip: the submission\n\n{texts.inputs} through the trained generator, each "
            "into a 256x256 JPEG; the images are checked against the competition's rules and written flat "
            "into `/kaggle/working/images.zip`. The time both take is measured."),
        new_code_cell(
            "started = time.perf_counter()\n"
            'images = STAGES["generate"].run(cfg)\n'
            f"{trainer}"
            'images_zip = STAGES["zip"].run(cfg)\n'
            'print(f"generate + zip took {time.perf_counter() - started:.0f} s")'),
    ]


def continue_session(texts: Texts) -> Cells:
    n = texts.session
    source = (f"the output of `{texts.attaches}` (session {n - 1}, attached as an input) is copied "
              "into this notebook's data folder and training resumes from its last checkpoint"
              if texts.attaches else
              "this is the run's first session: it measures the step rate and plans the run's steps for "
              "every session")
    return [
        new_markdown_cell(f"## continue the run\n\nSession {n} of {texts.kcfg.train.sessions}: "
                          f"{source}."),
        new_code_cell("notebook.continue_session(cfg)"),
    ]


def session_summary(texts: Texts) -> Cells:
    return [
        new_markdown_cell("## where the run stands\n\nThe loss plot, the latest sample grid "
                          f"({texts.grid}) and one line: this session's steps, the run's planned total, the "
                          "learning rate now."),
        new_code_cell("notebook.show_session(cfg)"),
    ]


def score_subset(texts: Texts) -> Cells:
    kcfg = texts.kcfg
    return [
        new_markdown_cell(
            f"## score the variant: {kcfg.sweep.score_images:,} images\n\nThis kernel is the variant "
            f"`{kcfg.kernel.sweep}` of a sweep: it renders {kcfg.sweep.score_images:,} images of the same "
            "photos as every other variant's (the data set's first four among them) and scores them where "
            "the FID weights are attached (or, with internet on, can be downloaded), so the variants "
            "compare. `sweep/score.json` and the first four images stay in the output; the others are "
            "deleted."),
        new_code_cell("notebook.score_subset(cfg)"),
    ]


def attach(texts: Texts) -> Cells:
    return [
        new_markdown_cell(
            f"## attach the trained run\n\nThe run folder is in {texts.attached_input} (attached as an "
            "input); generate reads its checkpoint in place (best.pt where kept, else last.pt, with "
            "the EMA weights where the run kept them) and the settings it was trained with."),
        new_code_cell("cfg = notebook.attach_run(cfg)"),
    ]


def score() -> Cells:
    return [
        new_markdown_cell(
            "## score: local MiFID (optional)\n\nOnly when the FID Inception weights are attached as a "
            "dataset: the competition's metric computed here against the 300 Monets (it ranks runs; it is "
            "not the leaderboard number). A failure here never touches `images.zip`."),
        new_code_cell("notebook.score(cfg)"),
    ]


def tidy(texts: Texts) -> Cells:
    if texts.kind == "train":
        return [
            new_markdown_cell(
                "## tidy up\n\nKaggle keeps all of `/kaggle/working` as this notebook's output, which "
                "the next session attaches: the run folder moves to `/kaggle/working/runs/<run>/` (`last.pt` "
                "with the EMA weights and the plan, `best.pt` where kept, the losses, plots, the latest "
                "sample grid and `sessions.json`); the data copy and the older checkpoints are deleted."),
            new_code_cell("notebook.tidy(cfg)"),
        ]
    return [
        new_markdown_cell(
            "## tidy up\n\nKaggle keeps all of `/kaggle/working` as this notebook's output. The loose "
            "images, the data copy and the checkpoints are deleted; `images.zip`, the small plots and logs "
            "stay."),
        new_code_cell("notebook.tidy(cfg)"),
    ]


def _numbered(cells: Cells, first: int) -> Cells:
    """The sections from cell `first` on (after the settings) numbered 0, 1, 2, ... in their headings."""
    n = 0
    for cell in cells[first:]:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            cell.source = f"## {n}. {cell.source[3:]}"
            n += 1
    return cells


def _hidden(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell.metadata.update({"_kg_hide-input": True, "jupyter": {"source_hidden": True}})
    return cell
