"""Which trial runs which session next, and what a session's local MiFID decides: successive halving over
sessions, with every report and every decision kept in the study's journal.

Each trial is a chain of sessions (rungs): session k trains `first_hours * eta**(k-1)` more hours, resumed
from session k-1's run, then scores the trial's EMA generator (the local MiFID of a fixed subset). After a
session the trial reports that MiFID at the step `search.step(k)` (the hours trained so far, in first-session
units: 1, 4, 13 for eta 3), so Optuna's SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta) has
one rung per session. The rung's decision waits until the rung is settled (every trial that can reach it has
reported it, and no new trial will start): the pruner then sees the whole rung, as synchronous successive
halving does (9 trials x 1 h, the best 3 x 3 h more, the best 1 x 9 h more), rather than promoting whichever
trial reported first. A pruned trial gets no more sessions; a promoted one its next; the last session
completes it with its MiFID there.

Surviving a restart (optuna issue 2177: no public way to rebuild a trial in another process): the pruner is
asked through its public `prune(study, frozen_trial)`, twice over a snapshot of the rung (the first pass
enters every trial's value at the rung, the second decides against all of them), and each decision is written
at once as the trial's user attribute `rung_<k>` ("promoted" / "pruned"), so a command killed and run again
reads the decision instead of asking again; reports and attributes are written through
`optuna.trial.Trial(study, trial_id)`, the one place this module reaches past Optuna's public surface.
Several processes may share the journal (its file is its own lock): what one takes next is chosen and claimed
(the trial's user attribute `held_<k>`: host and pid) under Optuna's file lock beside the journal, so no two
ever run the same session; one whose process is gone is taken over.
"""
from __future__ import annotations

import contextlib
import enum
import math
import os
import socket
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from ..jobs.push import QuotaExhausted
from .spec import VARIANT, Search
from .study import distributions

PROMOTED, PRUNED = "promoted", "pruned"  # a rung's decision, as the journal keeps it (`rung_<k>`)


class TrialStatus(enum.StrEnum):
    """Where a trial stands (its text is what --status, --json and the page show)."""

    QUEUED = "queued"  # given (a sweep's variant) and not started
    RUNNING = "running"
    WAITING = "waiting"  # for its rung's decision
    PRUNED = "pruned"
    COMPLETE = "complete"
    FAILED = "failed"


FINISHED = {TrialState.COMPLETE: TrialStatus.COMPLETE, TrialState.PRUNED: TrialStatus.PRUNED,
            TrialState.FAIL: TrialStatus.FAILED, TrialState.WAITING: TrialStatus.QUEUED}
HOST = socket.gethostname()
OWNER = f"{HOST}:{os.getpid()}"  # how a session's process is named in the journal


@dataclass(frozen=True)
class Session:
    """One session of one trial, as the scheduler hands it out."""

    trial: int  # the trial's number in the study
    session: int  # 1: its first
    params: dict[str, Any]
    hours: float  # this session's length (GPU-hours it may take)


@dataclass(frozen=True)
class TrialRow:
    """A trial as --status, --json and the page show it."""

    number: int
    params: dict[str, Any]
    state: TrialStatus
    mifid: list[float]  # by session
    hours: float  # GPU-hours its sessions took (or may take, while one runs)
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # what its last session left (results.details)

    @property
    def value(self) -> float:
        return self.mifid[-1] if self.mifid else math.inf

    def settings(self) -> list[str]:
        """Its params as "key=value", floats to 4 significant digits."""
        return [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()]


def params_of(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's params as sessions are handed out with them: a sweep's variant (its user attribute) too."""
    given = {VARIANT: trial.user_attrs[VARIANT]} if VARIANT in trial.user_attrs else {}
    return {**given, **trial.params}


class Scheduler:
    """Sessions of `search`'s trials in `study`, as successive halving hands them out."""

    def __init__(self, study: optuna.Study, search: Search, train_limit_h: float, folder: Path) -> None:
        self.study, self.search, self.limit_h = study, search, train_limit_h
        # what this process takes is chosen and claimed under Optuna's own file lock, beside the journal:
        # processes on several machines sharing the folder never take the same session
        self._claims = JournalFileOpenLock(str(Path(folder) / "claims"))

    # -- what runs next ---------------------------------------------------------------------------------
    def next(self, running: Collection[tuple[int, int]] = (),
             only: Collection[tuple[int, int]] | None = None) -> Session | None:
        """The next session to run now, none of `running` ((trial, session) pairs run by this process):
        a started trial's next session first (also one an earlier call handed out and did not see end), else a
        new trial while the search has trials to start; None when nothing can start until something ends.
        `only`: one of these sessions or none (those an earlier call left running, taken over without a free
        GPU). QuotaExhausted (nothing handed out) when the search's gpu_hours cannot cover it."""
        with self._locked():
            return self._next(running, only)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._claims.acquire()
        try:
            yield
        finally:
            self._claims.release()

    def _next(self, running: Collection[tuple[int, int]],
              only: Collection[tuple[int, int]] | None) -> Session | None:
        self._settle()
        for trial in self._trials(TrialState.RUNNING):
            k = self._next_session(trial)
            key = (trial.number, k)
            if k is None or key in running or only is not None and key not in only:
                continue
            if not self._held_elsewhere(trial, k):
                session = Session(trial.number, k, params_of(trial), self.hours(k))
                return self._claim(self._within_budget(session, running), trial._trial_id)
        if only is not None:
            return None
        given = self._trials(TrialState.WAITING)  # enqueued: a sweep's variants, started before any other
        if not given and len(self.study.get_trials(deepcopy=False)) >= self.search.trials:
            return None
        self._within_budget(Session(-1, 1, {}, self.hours(1)), running)
        live = self.study.ask(distributions(self.search))
        trial = self.study.get_trials(deepcopy=False)[live.number]
        return self._claim(Session(trial.number, 1, params_of(trial), self.hours(1)), trial._trial_id)

    def _claim(self, session: Session, trial_id: int) -> Session:
        """Write down that this process runs the session: another one sharing the journal leaves it."""
        optuna.trial.Trial(self.study, trial_id).set_user_attr(f"held_{session.session}", OWNER)
        return session

    def _held_elsewhere(self, trial: FrozenTrial, k: int) -> bool:
        """Session k is run by another process that still lives (one on another machine is taken to)."""
        owner = str(trial.user_attrs.get(f"held_{k}", ""))
        if not owner or owner == OWNER:
            return False
        host, _, pid = owner.rpartition(":")
        return host != HOST or Path(f"/proc/{pid}").exists()

    def hours(self, session: int) -> float:
        return self.search.rung_hours(session, self.limit_h)

    def spent_h(self, running: Collection[tuple[int, int]] = ()) -> float:
        """GPU-hours the search's sessions took, and those running may take."""
        done = sum(hours_of(t) for t in self.study.get_trials(deepcopy=False))
        return done + sum(self.hours(k) for _, k in running)

    def _within_budget(self, session: Session, running: Collection[tuple[int, int]]) -> Session:
        spent = self.spent_h(running)
        if spent + session.hours > self.search.gpu_hours + 1e-9:
            what = (f"trial {session.trial}'s session {session.session}" if session.trial >= 0
                    else "a new trial")
            raise QuotaExhausted(f"search {self.search.name}: {what} ({session.hours:g} h) would pass its "
                                 f"gpu_hours = {self.search.gpu_hours:g} ({spent:.1f} h spent or held)")
        return session

    def _next_session(self, trial: FrozenTrial) -> int | None:
        """The session a running trial may run now: its first, or the one after a promoted rung; None while
        its last report waits for the rung's decision."""
        last = self._last_session(trial)
        if last == 0:
            return 1
        return last + 1 if trial.user_attrs.get(f"rung_{last}") == PROMOTED else None

    # -- what a session's end decides --------------------------------------------------------------------
    def report(self, trial: int, session: int, mifid: float, hours: float,
               details: dict[str, Any] | None = None) -> TrialStatus:
        """Record session `session` of `trial`: its MiFID, hours and what else it left (`details`: steps,
        scores, its run, its pictures); returns "complete" (its last session, or a trial never pruned), or
        "waiting" (its rung decides once settled). Reporting the same session again (a command killed after
        reporting) changes nothing."""
        with self._locked():
            frozen = self.study.get_trials(deepcopy=False)[trial]
            if frozen.state is not TrialState.RUNNING:
                return FINISHED.get(frozen.state, TrialStatus.RUNNING)
            live = optuna.trial.Trial(self.study, frozen._trial_id)
            if self._last_session(frozen) < session:
                live.set_user_attr(f"hours_{session}", hours)
                live.set_user_attr(f"result_{session}", details or {})
                live.report(mifid, self.search.step(session))
            if session >= self.search.sessions or not self.search.pruned:
                self.study.tell(trial, mifid, skip_if_finished=True)
                return TrialStatus.COMPLETE
            self._settle()
            return TrialStatus.WAITING

    def failed(self, trial: int, session: int, error: str, hours: float,
               details: dict[str, Any] | None = None) -> None:
        """A session that ended without a MiFID (its kernel failed, nothing scored): the trial fails."""
        with self._locked():
            frozen = self.study.get_trials(deepcopy=False)[trial]
            if frozen.state is not TrialState.RUNNING:
                return
            live = optuna.trial.Trial(self.study, frozen._trial_id)
            live.set_user_attr(f"hours_{session}", hours)
            live.set_user_attr("error", error[:300])
            live.set_user_attr(f"result_{session}", details or {})
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def _settle(self) -> None:
        """Decide every rung that is settled and has trials waiting for its decision."""
        if not self.search.pruned:
            return
        for k in range(1, self.search.sessions):
            waiting = [t for t in self._trials(TrialState.RUNNING) if self._last_session(t) == k
                       and f"rung_{k}" not in t.user_attrs]
            if waiting and self._settled(k):
                self._decide(k, waiting)

    def _settled(self, k: int) -> bool:
        """Rung k can be decided: no new trial will start, and every running trial has reported session k."""
        started = len(self.study.get_trials(deepcopy=False))
        more = started < self.search.trials and self.spent_h() + self.hours(1) <= self.search.gpu_hours + 1e-9
        return not more and all(self._last_session(t) >= k for t in self._trials(TrialState.RUNNING))

    def _decide(self, k: int, waiting: list[FrozenTrial]) -> None:
        pruner = self.study.pruner
        for trial in waiting:  # first pass: every waiting trial's value enters the rung
            pruner.prune(self.study, trial)
        decisions = {t.number: pruner.prune(self.study, t) for t in waiting}  # against the whole rung
        for trial in waiting:
            live = optuna.trial.Trial(self.study, trial._trial_id)
            live.set_user_attr(f"rung_{k}", PRUNED if decisions[trial.number] else PROMOTED)
            if decisions[trial.number]:
                self.study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)

    # -- reading the journal ----------------------------------------------------------------------------
    def _trials(self, state: TrialState) -> list[FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False) if t.state is state]

    def _last_session(self, trial: FrozenTrial) -> int:
        """The last session the trial reported (0: none)."""
        steps = set(trial.intermediate_values)
        return max((k for k in range(1, self.search.sessions + 1) if self.search.step(k) in steps), default=0)


    def rows(self) -> list[TrialRow]:
        return rows(self.study)


def rows(study: optuna.Study) -> list[TrialRow]:
    """Every trial of a study as its journal holds it: those that got the most sessions first, each group best
    (lowest MiFID at its last session) first."""
    found = []
    for t in study.get_trials(deepcopy=False):
        mifid = [v for _, v in sorted(t.intermediate_values.items())]
        state = FINISHED.get(t.state, TrialStatus.RUNNING)
        if state is TrialStatus.RUNNING and mifid and t.user_attrs.get(f"rung_{len(mifid)}") != PROMOTED:
            state = TrialStatus.WAITING
        results = {int(k.split("_")[1]): v for k, v in t.user_attrs.items() if k.startswith("result_")}
        found.append(TrialRow(t.number, params_of(t), state, mifid, hours_of(t),
                              str(t.user_attrs.get("error", "")), results[max(results)] if results else {}))
    # the furthest first (a trial's MiFID is only compared with those of the same session), best within;
    # the failed last, those not started before them
    return sorted(found, key=lambda r: (r.state is TrialStatus.FAILED, r.state is TrialStatus.QUEUED,
                                        -len(r.mifid), r.value, r.number))


def hours_of(trial: FrozenTrial) -> float:
    """The GPU-hours a trial's reported sessions took."""
    return sum(float(v) for key, v in trial.user_attrs.items() if key.startswith("hours_"))
