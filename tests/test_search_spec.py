"""Search files and their studies: the ready files load; every bad input is refused before anything runs, in
one line naming the key; the study lives in a journal that optuna.load_study opens, with the sampler and
pruner its kind calls for, refuses a changed space, and holds a sweep's variants once however often it is
opened."""
from __future__ import annotations

from pathlib import Path

import helpers  # noqa: F401  (importing it registers the model families, as every entry point does)
import optuna
import pytest

from pipeline.engine.errors import UserError
from pipeline.search import spec
from pipeline.search.study import distributions, journal, open_study, storage
from pipeline.sweeps import spec as sweeps

SPACE = {"train.lr": "{low = 5e-5, high = 4e-4, log = true}",
         "cyclegan.ngf": "{low = 32, high = 64, step = 16}", "train.ema": "{choices = [0.0, 0.999]}"}
SEARCH = {"trials": "9", "gpu_hours": "27", "sessions": "3", "first_hours": "1.0", "eta": "3", "seed": "0",
          "backend": '"kaggle"'}


def write_search(path: Path, search: dict[str, str] | None = None, space: dict[str, str] | None = None,
                 top: str = "") -> Path:
    """A search file on the demo preset: SEARCH's values and SPACE's dimensions, each replaced where given
    (None drops it), `top` before the [search] table."""
    table = {**SEARCH, **(search or {})}
    dims = SPACE if space is None else space
    lines = ['preset = "demo"', 'set = ["train.time_budget_min=0.3"]', top, "[search]"]
    lines += [f"{k} = {v}" for k, v in table.items() if v is not None]
    lines += ["[search.space]", *(f'"{k}" = {v}' for k, v in dims.items() if v is not None)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_ready_searches_load_with_their_stated_hours():
    demo, recipe = spec.load("demo"), spec.load("recipe")
    assert demo.backend == "local" and recipe.backend == "kaggle" and demo.pruned and recipe.pruned
    # the recipe: 9 x 1 h + 3 x 3 h + 1 x 9 h, the third session at a train session's 9-hour limit
    assert [recipe.rung_hours(s, 9.0) for s in (1, 2, 3)] == [1.0, 3.0, 9.0] and recipe.gpu_hours == 27
    assert recipe.most_hours(9.0) == 27 and [recipe.step(s) for s in (1, 2, 3)] == [1, 4, 13]
    assert demo.trials == 4 and demo.sessions == 2
    assert demo.most_hours(9.0) == pytest.approx(4 * 0.007 + 2 * 0.014)  # under its gpu_hours, 0.06
    settings = demo.settings({"train.lr": 1.2345678e-4, "cyclegan.ngf": 16})
    assert settings.train.lr == 1.2345678e-4 and settings.families.cyclegan.ngf == 16  # a float in full
    assert settings.train.time_budget_min == 0.42 and settings.download.source == "demo"


def test_a_later_session_is_eta_times_longer_up_to_a_train_sessions_limit(tmp_path):
    search = spec.load(str(write_search(tmp_path / "s.toml", {"first_hours": "2.0", "eta": "4",
                                                                "gpu_hours": "50"})))
    assert [search.rung_hours(s, 9.0) for s in (1, 2, 3)] == [2.0, 8.0, 9.0]
    assert search.most_hours(9.0) == 9 * 2 + 2 * 8 + 1 * 9  # the shape's 43 h, under the cap of 50
    assert spec.load(str(write_search(tmp_path / "t.toml", {"trials": "1", "gpu_hours": "100"}))) \
        .most_hours(9.0) == 1 + 3 + 9  # one trial given every session (first_hours 1, eta 3)


BAD = [
    ("unknown setting", {}, {"train.lrr": "{low = 1e-4, high = 2e-4}"}, "", 'search.space "train.lrr"'),
    ("a value its setting refuses", {}, {"train.ema": "{low = 0.5, high = 1.0}"}, "",
     'search.space "train.ema"'),
    ("no section", {}, {"lr": "{low = 1e-4, high = 2e-4}"}, "", 'search.space "lr"'),
    ("empty space", {}, {}, "", "search.space is empty"),
    ("low >= high", {}, {"train.lr": "{low = 4e-4, high = 4e-4}"}, "", 'search.space "train.lr": low'),
    ("log with low <= 0", {}, {"train.lr": "{low = 0.0, high = 4e-4, log = true}"}, "",
     'search.space "train.lr": log'),
    ("one choice", {}, {"train.ema": "{choices = [0.999]}"}, "", 'search.space "train.ema": choices'),
    ("a choice given twice", {}, {"train.ema": "{choices = [0.999, 0.999]}"}, "", 'search.space "train.ema"'),
    ("neither range nor choices", {}, {"train.ema": "{values = [0.0, 0.999]}"}, "",
     'search.space "train.ema"'),
    ("eta < 2", {"eta": "1"}, None, "", "search.eta"),
    ("sessions < 1", {"sessions": "0"}, None, "", "search.sessions"),
    ("trials < 1", {"trials": "0"}, None, "", "search.trials"),
    ("no trials", {"trials": None}, None, "", "search.trials"),
    ("gpu_hours below one first session", {"gpu_hours": "0.5"}, None, "", "search.gpu_hours"),
    ("first_hours above a session's limit", {"first_hours": "10.0"}, None, "", "search.first_hours"),
    ("an unknown backend", {"backend": '"colab"'}, None, "", "search.backend"),
    ("an unknown key", {"rungs": "3"}, None, "", "unknown key(s) rungs"),
    ("more trials than grid points", {"trials": "5"}, {"train.ema": "{choices = [0.0, 0.999]}",
                                                      "cyclegan.generator": '{choices = ["unet", "resnet"]}'},
     "", "search.trials"),
    ("a grid naming a key of the space", {}, None, '[grid]\n"train.lr" = [1e-4, 2e-4]',
     'search.space "train.lr" is also in [grid]'),
    ("variants", {}, None, '[[variant]]\nname = "ema"\nset = ["train.ema=0.99"]', "[[variant]]"),
]


@pytest.mark.parametrize(("search", "space", "top", "key"), [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_bad_input_is_refused_in_one_line_naming_the_key(tmp_path, search, space, top, key):
    path = write_search(tmp_path / "bad.toml", search, space, top)
    with pytest.raises(UserError) as refused:
        spec.load(str(path))
    message = str(refused.value)
    assert message.startswith("search bad") and key in message and "\n" not in message, message


def test_a_grid_in_a_search_file_is_a_set_of_choices_sampled_as_a_grid(tmp_path):
    path = write_search(tmp_path / "g.toml", {"trials": "4"}, {"train.ema": "{choices = [0.0, 0.999]}"},
                        '[grid]\n"cyclegan.ngf" = [16, 32]')
    search = spec.load(str(path))
    assert search.space["cyclegan.ngf"] == optuna.distributions.CategoricalDistribution([16, 32])
    study = open_study(search, tmp_path / "study")
    assert isinstance(study.sampler, optuna.samplers.GridSampler)
    points = set()
    for _ in range(4):
        trial = study.ask(distributions(search))
        points.add(tuple(sorted(trial.params.items())))
        study.tell(trial, 1.0)
    assert len(points) == 4  # every point once


def test_the_journal_opens_with_optuna_load_study_and_keeps_reports(tmp_path):
    search = spec.load("demo")
    study = open_study(search, tmp_path / "demo")
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    assert isinstance(study.pruner, optuna.pruners.SuccessiveHalvingPruner)
    trial = study.ask(distributions(search))
    trial.report(80.0, search.step(1))
    study.tell(trial, 80.0)
    loaded = optuna.load_study(study_name="demo", storage=storage(journal(tmp_path / "demo")))
    [stored] = loaded.trials
    assert stored.params == trial.params and stored.intermediate_values == {1: 80.0} and stored.value == 80.0
    assert loaded.user_attrs["space"] == search.space_digest()
    assert loaded.user_attrs["file"] == str(search.path)
    assert loaded.direction == optuna.study.StudyDirection.MINIMIZE


def test_a_journal_reopened_with_a_changed_space_is_refused(tmp_path):
    folder = tmp_path / "s"
    open_study(spec.load(str(write_search(tmp_path / "s.toml"))), folder)
    reseeded = spec.load(str(write_search(tmp_path / "s.toml", {"seed": "7"})))
    open_study(reseeded, folder)  # the seed may change
    changed = spec.load(str(write_search(tmp_path / "s.toml", space={**SPACE, "train.ema": None})))
    with pytest.raises(UserError) as refused:
        open_study(changed, folder)
    message = str(refused.value)
    assert str(journal(folder)) in message and "new name" in message and "\n" not in message
    shape = spec.load(str(write_search(tmp_path / "s.toml", {"eta": "2"})))
    with pytest.raises(UserError, match="another space or shape"):
        open_study(shape, folder)


def test_a_reopened_study_never_replays_the_samples_of_an_earlier_opening(tmp_path):
    search = spec.load("demo")
    first = open_study(search, tmp_path / "d").ask(distributions(search)).params
    second = open_study(search, tmp_path / "d").ask(distributions(search)).params
    assert first != second
    again = open_study(search, tmp_path / "e").ask(distributions(search)).params
    assert again == first  # the same journal history, the same samples


def test_the_pruner_compares_trials_at_every_session(tmp_path):
    """eta 3: rungs at steps 1, 3, 9 meet sessions reported at 1, 4, 13, one rung each; a trial worse than
    the rung's best third is pruned at its second session too, not only at its first."""
    search = spec.load("recipe")
    study = open_study(search, tmp_path / "r")
    trials = [study.ask(distributions(search)) for _ in range(3)]
    pruned = []
    for trial, mifid in zip(trials, (50.0, 60.0, 40.0), strict=True):
        trial.report(mifid, search.step(1))
        pruned.append(trial.should_prune())
    assert pruned == [False, True, False]  # the first is promoted; then only the best so far
    first, _, third = trials
    first.report(45.0, search.step(2))
    assert not first.should_prune()
    third.report(70.0, search.step(2))
    assert third.should_prune()  # worse than the first at the second rung


def test_a_sweep_is_a_search_whose_variants_are_enqueued_once_and_again_where_they_change(tmp_path):
    sweep = sweeps.load("demo")
    search = spec.from_sweep(sweep)
    names = [v.name for v in sweep.variants]
    assert search.trials == len(names) == 3 and search.sessions == 1 and not search.pruned
    assert search.backend == "local" and search.gpu_hours == float("inf")  # Kaggle's quota is the cap
    assert search.most_hours(search.first_hours) == 3 * search.first_hours  # every variant its one session
    assert search.settings({"variant": "ema"}).train.ema == 0.99 and search.items({"variant": "base"}) == ()
    wanted = dict.fromkeys(names, "d1")
    for _ in range(3):
        study = open_study(search, tmp_path / "sweep", wanted)
    assert isinstance(study.pruner, optuna.pruners.NopPruner)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.WAITING] * 3
    asked = [study.ask(distributions(search)) for _ in names]
    assert sorted(study.trials[t.number].user_attrs["variant"] for t in asked) == sorted(names)
    assert study.trials[asked[1].number].user_attrs["changed"] == list(sweep.variant("resnet").changed)
    study.tell(asked[0], 1.0)
    study.tell(asked[1], 2.0)
    study.tell(asked[2], state=optuna.trial.TrialState.FAIL)
    assert len(open_study(search, tmp_path / "sweep", wanted).trials) == 3  # ended variants stay ended
    # a failed one runs again with --force; one whose settings changed runs anew
    again = open_study(search, tmp_path / "sweep", {**wanted, "base": "d2"}, force=True)
    queued = [t.user_attrs["variant"] for t in again.trials if t.state is optuna.trial.TrialState.WAITING]
    assert sorted(queued) == ["base", "ema"]


def test_kaggle_backend_comes_from_a_sweeps_settings():
    assert spec.from_sweep(sweeps.load("demo"), ("sweep.backend=kaggle",)).backend == "kaggle"
