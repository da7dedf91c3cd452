"""What a Kaggle kernel does, as a type: read once from the [kernel] settings (role, session, checkpoint_from,
sweep), so that the builder, the notebook and the commands that push it ask the job, not strings.

Four jobs: the submission notebook that trains its own run (Submit), the one that only generates from a run
another kernel trained (GenerateFrom), session n of a run trained over several kernels (TrainSession), and a
sweep variant's kernel (SweepVariant: one train session that also scores a subset). Each knows its Kaggle
name, the time limit it runs under (the push's session timeout and what the quota must cover) and which
input holds the run it needs: a kernel's output ("owner/slug") or, for a run trained elsewhere and put on
Kaggle with `python -m pipeline upload`, a dataset ("dataset:owner/slug").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol


class KernelNaming(Protocol):
    """The [kernel] settings a job reads: its base slug and title, and the time limits."""

    slug: str
    title: str
    time_limit_min: float
    generate_limit_min: float
    train_limit_min: float


@dataclass(frozen=True)
class Submit:
    """The submission notebook: trains, generates, zips; its images.zip is what the competition scores."""

    label: ClassVar[str] = "submit"  # how the notebook's texts name the job
    trains: ClassVar[bool] = True
    submitted: ClassVar[bool] = True
    limit_setting: ClassVar[str] = "kernel.time_limit_min"

    def slug(self, k: KernelNaming) -> str:
        return k.slug

    def title(self, k: KernelNaming) -> str:
        return k.title

    def attaches(self, k: KernelNaming) -> str:
        """The input holding the run this one needs: a kernel (slug, or owner/slug) or a dataset
        ("dataset:owner/slug", see `dataset`); "" for none."""
        return ""

    def limit_min(self, k: KernelNaming) -> float:
        return k.time_limit_min

    def settings(self) -> dict[str, object]:
        """The [kernel] values that make this job (KernelConfig.doing)."""
        return {"role": "submit", "session": 1, "checkpoint_from": "", "sweep": ""}


@dataclass(frozen=True)
class GenerateFrom(Submit):
    """A submission notebook that trains nothing: it generates from the run that `source` holds, the output
    of a train kernel (owner/slug) or an uploaded run's dataset (dataset:owner/slug)."""

    source: str = ""
    label: ClassVar[str] = "attached"
    trains: ClassVar[bool] = False
    limit_setting: ClassVar[str] = "kernel.generate_limit_min"

    def attaches(self, k: KernelNaming) -> str:
        return self.source

    def limit_min(self, k: KernelNaming) -> float:
        return k.generate_limit_min  # minutes of work: a 5-hour session would hold quota it never uses

    def settings(self) -> dict[str, object]:
        return {**super().settings(), "checkpoint_from": self.source}


@dataclass(frozen=True)
class TrainSession:
    """Session `n` of one run trained over train.sessions kernels: its output is the run folder. One kernel
    per session, because a kernel can attach another kernel's output but not its own earlier one."""

    n: int = 1
    label: ClassVar[str] = "train"
    trains: ClassVar[bool] = True
    submitted: ClassVar[bool] = False
    limit_setting: ClassVar[str] = "kernel.train_limit_min"

    def slug(self, k: KernelNaming) -> str:
        return train_slug(k.slug, self.n)

    def title(self, k: KernelNaming) -> str:
        return f"{k.title} train {self.n}"  # Kaggle makes it the same slug

    def attaches(self, k: KernelNaming) -> str:
        return train_slug(k.slug, self.n - 1) if self.n > 1 else ""

    def limit_min(self, k: KernelNaming) -> float:
        return k.train_limit_min

    def settings(self) -> dict[str, object]:
        return {"role": "train", "session": self.n, "checkpoint_from": "", "sweep": ""}


@dataclass(frozen=True)
class SweepVariant(TrainSession):
    """A sweep variant's kernel: one train session that also renders and scores sweep.score_images images."""

    sweep: str = ""  # "<sweep>/<variant>"

    def settings(self) -> dict[str, object]:
        return {**super().settings(), "sweep": self.sweep}


KernelJob = Submit | GenerateFrom | TrainSession | SweepVariant
ROLES = ("submit", "train")  # kernel.role


DATASET = "dataset:"  # how kernel.checkpoint_from names a dataset rather than a kernel


def dataset(source: str) -> str:
    """owner/slug of the dataset an input names ("dataset:owner/slug"); "" for a kernel's output."""
    return source.removeprefix(DATASET) if source.startswith(DATASET) else ""


def train_slug(base: str, session: int) -> str:
    """The Kaggle slug of session `session`'s kernel of the run named `base`."""
    return f"{base}-train-{session}"


def resolve(role: str, session: int, checkpoint_from: str, sweep: str) -> KernelJob:
    """The job the [kernel] settings describe; ValueError (with the key) where they contradict each other."""
    if role not in ROLES:
        raise ValueError(f"kernel.role must be one of: {', '.join(ROLES)}")
    if role == "submit":
        return GenerateFrom(checkpoint_from) if checkpoint_from else Submit()
    if checkpoint_from:
        raise ValueError("kernel.checkpoint_from is for a submit kernel (kernel.role=submit): a train kernel "
                         "resumes its previous session")
    return SweepVariant(session, sweep) if sweep else TrainSession(session)
