"""A search's Optuna study, in a journal file in the search's folder: no database server, and the journal is
its own lock, so several processes (or machines sharing the folder) can run trials of one study side by side.

The study is named after the search; it minimises MiFID. Its sampler is TPE, or the grid sampler where every
dimension is a choice; its pruner successive halving with the file's eta (a rung per session, see
Search.step), or none for a sweep. The space's digest is kept in the study: reopening a journal with another
space (or another shape of search) is refused, since its trials would be compared with others' rungs. A
sweep's variants are its enqueued trials (`given`): once each, and again where their settings changed or a
failed one is run again. The study's `token` (drawn when it is created) names its local runs, so a search
started afresh under an old name never resumes the old one's runs.
"""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from ..engine import store
from ..engine.errors import UserError
from .spec import VARIANT, Search

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the command says what happens, in its own lines

JOURNAL = "journal.log"


def journal(folder: Path) -> Path:
    """The journal file of the search whose folder is `folder` (`optuna-dashboard` opens it)."""
    return Path(folder) / JOURNAL


def storage(path: Path) -> JournalStorage:
    """The journal at `path` as Optuna's storage (`optuna.load_study(storage=...)` reads it too)."""
    return JournalStorage(JournalFileBackend(str(path)))


def open_study(search: Search, folder: Path, wanted: dict[str, str] | None = None,
               force: bool = False) -> optuna.Study:
    """The search's study in `folder`/journal.log: created on first use, reopened after, refused where the
    journal holds another space; a sweep's variants enqueued (`given`). Opening is serialised by a lock beside
    the journal, so two processes starting at once agree on its attributes and enqueue each variant once."""
    path = journal(folder)
    with store.locked(path):
        study = optuna.create_study(storage=storage(path), study_name=search.name, direction="minimize",
                                    pruner=pruner(search), load_if_exists=True)
        digest, stored = search.space_digest(), study.user_attrs.get("space")
        if stored is None:
            study.set_user_attr("space", digest)
            study.set_user_attr("file", str(search.path))
        elif stored != digest:
            raise UserError(f"{path}: written by a search with another space or shape (trials, sessions, "
                            f"eta, first_hours; its file {study.user_attrs.get('file', '?')}): move {folder} "
                            "away to start afresh, or give the changed search a new name")
        # Each opening draws from its own stream (the file's seed + how often it was opened before), so a
        # restarted or second process never replays the first process's samples, and the same journal
        # history always gives the same ones.
        opened = int(study.user_attrs.get("opened", 0))
        study.set_user_attr("opened", opened + 1)
        study.sampler = sampler(search, opened)
        if "token" not in study.user_attrs:
            study.set_user_attr("token", secrets.token_hex(3))
        if search.sweep is not None:
            given(study, search, wanted or {}, force)
    return study


def given(study: optuna.Study, search: Search, wanted: dict[str, str], force: bool) -> None:
    """Enqueue a sweep's variant as a trial where none runs it yet, where its settings changed since
    (`wanted`: variant -> the digest of what it runs), where it failed and `force` says to run it again, or
    where it ran here without being scored (its stages are cached: running it again only scores it)."""
    latest: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False):
        latest[str(trial.user_attrs.get(VARIANT))] = trial
    for variant in search.sweep.variants:
        trial, key = latest.get(variant.name), wanted.get(variant.name, "")
        failed = trial is not None and trial.state is TrialState.FAIL
        unscored = failed and trial.user_attrs.get("result_1", {}).get("unscored")
        again = trial is not None and trial.state.is_finished() and (
            trial.user_attrs.get("digest") != key or failed and (force or unscored))
        if trial is None or again:
            study.enqueue_trial({}, user_attrs={VARIANT: variant.name, "digest": key,
                                                "changed": list(variant.changed)})


def sampler(search: Search, opened: int = 0) -> optuna.samplers.BaseSampler:
    """Grid sampling where every dimension is a choice (its order fixed by the file's seed, the same in every
    process, so no two trial numbers share a point), TPE otherwise."""
    if search.space and all(isinstance(d, CategoricalDistribution) for d in search.space.values()):
        return AskTellGrid({k: list(d.choices) for k, d in search.space.items()}, seed=search.seed)
    return optuna.samplers.TPESampler(seed=search.seed + opened)


class AskTellGrid(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its stop: once the grid is used up it calls study.stop(), which ends
    study.optimize() but, outside it (ask and tell, as a search runs), raises after the last trial is stored.
    A search stops at its own number of trials."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: optuna.trial.TrialState, values: Sequence[float] | None) -> None:
        return None


def pruner(search: Search) -> optuna.pruners.BasePruner:
    """Successive halving with a rung at each session's step (min_resource 1, the file's eta); none for a
    sweep, whose trials all run to their end."""
    if not search.pruned:
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=search.eta,
                                                  min_early_stopping_rate=0)


def distributions(search: Search) -> dict[str, BaseDistribution]:
    """What `study.ask(fixed_distributions=...)` takes: a trial's every parameter sampled at once."""
    return dict(search.space)


def existing(folder: Path, name: str) -> optuna.Study | None:
    """The study in `folder` as its journal holds it, None where there is none yet: reading writes nothing."""
    path = journal(folder)
    if not path.is_file():
        return None
    return optuna.load_study(study_name=name, storage=storage(path))
