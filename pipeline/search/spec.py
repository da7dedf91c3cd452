"""A search file: a sweep file's base recipe (preset, set, description) and a `[search]` table saying what
to sample and how to spend the hours, checked before anything runs.

```toml
preset = "kaggle"
set = ["kernel.train_limit_min=540"]
[search]
trials = 9          # trials in all
gpu_hours = 27      # the most the whole search may spend
sessions = 3        # the most sessions (rungs) one trial may get
first_hours = 1.0   # the first session's length; each later one eta times longer, up to a session's limit
eta = 3             # the reduction factor: each rung keeps about the best 1/eta
seed = 0
backend = "kaggle"  # or "local"
[search.space]
"train.lr" = {low = 5e-5, high = 4e-4, log = true}   # a float (log: sampled on a log scale)
"cyclegan.ngf" = {low = 32, high = 64, step = 16}     # an int (low, high and step all integers)
"train.ema" = {choices = [0.0, 0.999]}                # a choice
```

A `[grid]` in a search file is a set of choices (each key a `{choices = [...]}` dimension); `[[variant]]`
tables belong in a sweep file. Ready searches live in pipeline/config/searches/. Every value a dimension can
take at its ends (low, high, each choice) is loaded as the trial's settings would be, so an unknown key or a
bad value fails here, in one line naming the key. A sweep is a search whose trials are given (`from_sweep`).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from ..config import Config, load_config
from ..engine.errors import UserError
from ..sweeps import spec as sweeps

if TYPE_CHECKING:
    from .scheduler import Session

SEARCHES_DIR = Path(__file__).resolve().parents[1] / "config" / "searches"
KEYS = ("preset", "set", "description", "grid", "search")
SEARCH_KEYS = ("trials", "gpu_hours", "sessions", "first_hours", "eta", "seed", "backend", "space")
BACKENDS = ("kaggle", "local")
RANGE_KEYS = ("low", "high", "log", "step")
VARIANT = "variant"  # a sweep trial's user attribute (and its one param as handed out): the variant it runs


@dataclass(frozen=True)
class Search:
    name: str
    path: Path
    preset: str
    sets: tuple[str, ...]  # the base's "section.key=value" items
    description: str
    trials: int
    gpu_hours: float
    sessions: int
    first_hours: float
    eta: int
    seed: int
    backend: str  # kaggle | local
    space: dict[str, BaseDistribution] = field(hash=False)
    pruned: bool = True  # False for a sweep: every trial runs to its end
    sweep: sweeps.Sweep | None = None  # the sweep whose variants are the trials, for a sweep

    @property
    def kind(self) -> str:
        """"sweep" or "search": what messages call it, and the first word of its folders' and runs' names."""
        return "search" if self.sweep is None else "sweep"

    @property
    def home(self) -> str:
        """The folder its journal (under submissions/) and its trials' own data (under data/) sit in."""
        return "search" if self.sweep is None else "sweeps"

    def label(self, trial: int, params: dict[str, Any]) -> str:
        """How a trial's folders, runs and kernels are named: `t<n>`, or a sweep's variant's slug."""
        return f"t{trial}" if self.sweep is None else self.sweep.variant(params[VARIANT]).slug

    def rung_hours(self, session: int, train_limit_h: float) -> float:
        """Session `session`'s length (1 = the first): first_hours, eta times longer each session after,
        never beyond one train session's limit."""
        return min(self.first_hours * self.eta ** (session - 1), train_limit_h)

    def step(self, session: int) -> int:
        """The step a trial reports session `session` at: its resource so far in first-session units
        (1, 4, 13 for eta 3), so that SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta) meets
        one rung per session (its rungs sit at steps 1, eta, eta², ...)."""
        return sum(self.eta ** k for k in range(session))

    def most_hours(self, train_limit_h: float) -> float:
        """The most the whole search can spend: its gpu_hours, or less where its shape uses less: every trial
        a first session, about the best 1/eta of them a second (at least one), and so on (9 x 1 h + 3 x 3 h
        + 1 x 9 h for 9 trials, eta 3), or every trial every session for a sweep."""
        alive, hours = self.trials, 0.0
        for session in range(1, self.sessions + 1):
            hours += alive * self.rung_hours(session, train_limit_h)
            alive = max(1, alive // self.eta) if self.pruned else alive
        return min(self.gpu_hours, hours)

    def what(self, session: Session) -> str:
        """How messages name a session: "trial 3 session 2 of 3", or a sweep's "variant wide"."""
        if self.sweep is not None:
            return f"variant {session.params[VARIANT]}"
        return f"trial {session.trial} session {session.session} of {self.sessions}"

    def items(self, params: dict[str, Any]) -> tuple[str, ...]:
        """The "section.key=value" items a trial's params put on top of the base."""
        if self.sweep is not None:
            return self.sweep.variant(params[VARIANT]).sets
        return tuple(item(key, value) for key, value in params.items())

    def settings(self, params: dict[str, Any], extra: tuple[str, ...] = ()) -> Config:
        """A trial's settings: the base preset, the base's items, the params', then `extra`."""
        return load_config(self.preset, [*self.sets, *self.items(params), *extra])

    def space_digest(self) -> str:
        """A digest of what must not change under a journal: the space and the shape of the search (a sweep
        may gain variants and change them: each variant's trial keeps the digest of its own settings)."""
        if self.sweep is not None:
            return "sweep"
        shape = {"space": {k: json.loads(distribution_to_json(d)) for k, d in sorted(self.space.items())},
                 "trials": self.trials, "sessions": self.sessions, "eta": self.eta,
                 "first_hours": self.first_hours, "pruned": self.pruned}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def item(key: str, value: Any) -> str:
    """key=value as --set reads it back to the same value (a float in full, a string quoted)."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, str):
        return f"{key}={json.dumps(value)}"
    return f"{key}={value!r}"


def load(spec: str, extra: tuple[str, ...] = ()) -> Search:
    """The search `spec` names, every setting its space can reach checked (with `extra`, as trials run)."""
    path, data = sweeps.read_file(spec, SEARCHES_DIR, "search")
    name = path.stem
    where = f"search {name}"
    if "variant" in data:
        raise UserError(f"{where}: [[variant]] tables belong in a sweep file ({path}); give a search its "
                        'choices in [search.space] ("section.key" = {choices = [...]})')
    _known(where, data, KEYS, path)
    table = data.get("search")
    if not isinstance(table, dict):
        raise UserError(f"{where}: no [search] table in {path}: give trials, gpu_hours, first_hours and a "
                        "[search.space]")
    _known(f"{where}: [search]", table, SEARCH_KEYS, path)
    preset = str(data.get("preset", "kaggle"))
    sets = _items(data.get("set", []), f"{where}: set")
    try:
        base = load_config(preset, [*sets, *extra])
    except UserError as exc:
        raise UserError(f"{where}: the base: {exc}") from None
    space = _space(where, table.get("space", {}), data.get("grid", {}))
    for key, values in _ends(space).items():
        for value in values:
            try:
                load_config(preset, [*sets, *extra, item(key, value)])
            except UserError as exc:
                raise UserError(f'{where}: search.space "{key}" = {value!r}: {exc}') from None
    search = Search(
        name, path, preset, tuple(sets), str(data.get("description", "")),
        trials=_int(where, table, "trials", None, 1), gpu_hours=_hours(where, table, "gpu_hours"),
        sessions=_int(where, table, "sessions", 3, 1), first_hours=_hours(where, table, "first_hours"),
        eta=_int(where, table, "eta", 3, 2), seed=_int(where, table, "seed", 0, None),
        backend=str(table.get("backend", "kaggle")), space=space)
    _check(where, search, base.kernel.train_limit_min / 60)
    return search


def from_sweep(sweep: sweeps.Sweep, extra: tuple[str, ...] = ()) -> Search:
    """A sweep as a search whose trials are given: each variant an enqueued trial (its name the trial's
    `variant` user attribute, so that the sweep file may gain variants under the same journal), run for one
    session of a train kernel's limit, none pruned, no cap of its own (Kaggle's quota is checked)."""
    base = sweep.settings(sweep.variants[0], extra)
    hours = base.kernel.train_limit_min / 60
    return Search(sweep.name, sweep.path, sweep.preset, sweep.sets, sweep.description,
                  trials=len(sweep.variants), gpu_hours=math.inf, sessions=1, first_hours=hours, eta=3,
                  seed=0, backend=base.sweep.backend, space={}, pruned=False, sweep=sweep)


def _known(where: str, table: dict[str, Any], keys: tuple[str, ...], path: Path) -> None:
    if unknown := sorted(set(table) - set(keys)):
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} in {path}; it holds: "
                        f"{', '.join(keys)}")


def _items(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise UserError(f'{where} must be a list of "section.key=value" strings')
    return list(value)


def _int(where: str, table: dict[str, Any], key: str, default: int | None, least: int | None) -> int:
    value = table.get(key, default)
    if value is None:
        raise UserError(f"{where}: search.{key} is missing: give it in [search]")
    if not isinstance(value, int) or isinstance(value, bool) or (least is not None and value < least):
        raise UserError(f"{where}: search.{key} = {value!r}: must be an integer"
                        + (f" >= {least}" if least is not None else ""))
    return value


def _hours(where: str, table: dict[str, Any], key: str) -> float:
    value = table.get(key)
    if not _number(value) or value <= 0:
        raise UserError(f"{where}: search.{key} = {value!r}: must be a number of hours > 0")
    return float(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(where: str, search: Search, train_limit_h: float) -> None:
    """What the values say together: a backend, a first session that fits a train session and the cap,
    a grid with enough points for its trials."""
    if search.backend not in BACKENDS:
        raise UserError(f"{where}: search.backend = {search.backend!r}: must be one of: "
                        f"{', '.join(BACKENDS)}")
    if search.first_hours > train_limit_h:
        raise UserError(f"{where}: search.first_hours = {search.first_hours:g}: above a train session's "
                        f"limit ({train_limit_h:g} h, kernel.train_limit_min): shorten it")
    if search.gpu_hours < search.first_hours:
        raise UserError(f"{where}: search.gpu_hours = {search.gpu_hours:g}: below one first session "
                        f"({search.first_hours:g} h, search.first_hours): raise it")
    if all(isinstance(d, CategoricalDistribution) for d in search.space.values()):
        points = math.prod(len(d.choices) for d in search.space.values())
        if search.trials > points:
            raise UserError(f"{where}: search.trials = {search.trials}: more than the {points} points of its "
                            "space (every dimension a choice): give at most that many")


def _space(where: str, space: Any, grid: Any) -> dict[str, BaseDistribution]:
    """The dimensions of [search.space] and a [grid]'s (each list a choice), each checked on its own."""
    if not isinstance(space, dict) or not isinstance(grid, dict):
        raise UserError(f'{where}: [search.space] and [grid] are tables of "section.key" = ...')
    if both := sorted(set(space) & set(grid)):
        raise UserError(f'{where}: search.space "{both[0]}" is also in [grid]: give it in one of them')
    tables = {**{key: {"choices": values} for key, values in grid.items()}, **space}
    if not tables:
        raise UserError(f'{where}: search.space is empty: give at least one dimension, e.g. '
                        '"train.lr" = {low = 5e-5, high = 4e-4, log = true}')
    return {key: _dimension(f'{where}: search.space "{key}"', key, spec) for key, spec in tables.items()}


def _dimension(where: str, key: str, spec: Any) -> BaseDistribution:
    if "." not in key:
        raise UserError(f'{where}: name a setting as section.key, e.g. "train.lr"')
    if not isinstance(spec, dict) or not spec or set(spec) - {"choices", *RANGE_KEYS}:
        raise UserError(f"{where}: must be {{low = ..., high = ...}} (with log = true or step = ...) or "
                        "{choices = [...]}")
    if "choices" in spec:
        choices = spec["choices"]
        if len(spec) > 1 or not isinstance(choices, list) \
                or not all(isinstance(c, (str, int, float, bool)) for c in choices):
            raise UserError(f"{where}: choices = [...] is a list of values (strings, numbers, booleans), "
                            "with no low, high, log or step")
        if len({json.dumps(c) for c in choices}) < 2:
            raise UserError(f"{where}: choices = {choices!r}: give at least two different values (one value "
                            "is a setting: put it in set)")
        return CategoricalDistribution(choices)
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    if not _number(low) or not _number(high) or not isinstance(log, bool) \
            or (step is not None and (not _number(step) or step <= 0)):
        raise UserError(f"{where}: low and high must be numbers, log true or false, step a number > 0")
    if low >= high:
        raise UserError(f"{where}: low ({low!r}) must be below high ({high!r})")
    if log and low <= 0:
        raise UserError(f"{where}: log = true needs low > 0 (got {low!r})")
    if log and step is not None:
        raise UserError(f"{where}: give log = true or a step, not both")
    if step is not None and not math.isclose((high - low) / step, round((high - low) / step)):
        raise UserError(f"{where}: high - low ({high - low!r}) must be a whole number of steps ({step!r})")
    if all(isinstance(v, int) for v in (low, high, step or 1)):
        return IntDistribution(low, high, log=log, step=step or 1)
    return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))


def _ends(space: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The values each dimension can take at its ends: low and high, or every choice."""
    return {key: list(d.choices) if isinstance(d, CategoricalDistribution) else [d.low, d.high]
            for key, d in space.items()}

