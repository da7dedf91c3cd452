"""How long a run trains and what it keeps (training/plan.py, clock.py, the loop): the plan fitted to the
clock and re-fitted for the whole session, each session's share of it, epochs over the photos, the EMA
generator."""
from __future__ import annotations

import pytest
import torch
from helpers import losses, make_jpegs, make_trainer, resume_from_step

from pipeline.generate import render
from pipeline.stages import STAGES
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.clock import StepClock
from pipeline.training.families.cyclegan.step import CycleGANTrainer
from pipeline.training.family import get_family
from pipeline.training.plan import Plan, fit_to_clock, revise
from pipeline.training.runtime import Runtime
from pipeline.training.trainer import ema_decay

DATA = (8, 8)  # the config fixture's paintings and photos: an epoch over either is 4 steps of batch 2


def test_the_plan_decays_to_zero_over_its_own_length_and_never_outgrows_the_epochs():
    plan = Plan(100, 0.5)
    assert [plan.lr_factor(s) for s in (0, 49, 50, 75, 99)] == pytest.approx([1, 1, 1, 0.5, 0.02])
    assert plan.describe(226.4) == "planned 100 steps in 226 min; decay from step 50"
    # 60 s left at 10 steps/s: 570 more steps (5% kept for the last checkpoint), capped by the epochs' 500
    assert fit_to_clock(10_000, 0.5, 100, 10.0, 60).total == 670
    assert fit_to_clock(500, 0.5, 100, 10.0, 60).total == 500
    assert fit_to_clock(500, 0.5, 100, 10.0, -5).total == 101  # late: one more (decayed) step
    assert fit_to_clock(10_000, 0.5, 100, 10.0, 60, slack_steps=100).total == 570
    assert Plan.from_dict(plan.as_dict()) == plan


def test_a_re_plan_ignores_rate_noise_but_never_lets_the_plan_overrun_the_budget():
    long = Plan(3_300, 0.5, by_clock=True)  # 1% of it is 33 steps: more than the last second's worth
    assert revise(Plan(5_000, 0.5), Plan(3_300, 0.5, True), 4, fits=True) == Plan(3_300, 0.5, True)  # first
    assert revise(long, Plan(3_320, 0.5, True), 100, fits=True) is None  # noise: kept
    assert revise(long, Plan(3_400, 0.5, True), 100, fits=True).total == 3_400  # moved by 3%: adopted
    assert revise(long, Plan(3_400, 0.5, True), 2_000, fits=True).total == 3_400  # decaying too: all session
    assert revise(long, Plan(3_280, 0.5, True), 3_200, fits=True) is None  # ends in time: kept
    assert revise(long, Plan(3_280, 0.5, True), 3_200, fits=False).total == 3_280  # would overrun: shorter
    assert revise(long, Plan(3_280, 0.5, True), 3_300, fits=False) is None  # it would end behind this step
    assert revise(long, Plan(6_000, 0.5, True), 3_300, fits=True).total == 6_000  # its end: time left to use


def test_each_session_trains_its_share_of_the_plan_by_steps_or_where_they_differ_by_work():
    plan = Plan(100, 0.5, by_clock=True)
    assert [plan.share(k, 3) for k in (1, 2, 3, 4)] == [34, 67, 100, 100]

    def cost(progress: float) -> float:  # the second half's steps cost 3 times the first half's
        return 1.0 if progress < 0.5 else 3.0

    assert plan.share(1, 2, cost) == 67  # 50 cheap steps and 17 dear ones: half the 200 units of work


def test_a_budgeted_run_plans_its_steps_by_the_clock_and_ends_with_its_learning_rate_decayed(config, capsys,
                                                                                             step_clock,
                                                                                             monkeypatch):
    clock = step_clock  # 0.1 s a step
    monkeypatch.setattr(CycleGANTrainer, "train_step",  # the loop's plan is under test, not the networks
                        lambda self, batch, progress: {"loss": torch.tensor(1.0)})
    cfg = config("train.epochs=1000", "train.time_budget_min=0.5", "train.log_every=10",
                 "train.sample_every=1000", "train.checkpoint_every=1000")
    summary = train.build(cfg, cfg.run_dir, clock=clock)
    out = capsys.readouterr().out
    assert "planned 4,000 steps; decay from step 2,000" in out  # the epochs' plan, until measured
    # 30 s at 10 steps/s: 285 steps fit (5% kept back), less 2 log intervals of slack
    assert "planned 265 steps in 0.4 min; decay from step 132 (measured 10.00 steps/s at step 20)" in out
    saved = checkpoint.read(cfg.run_dir / "last.pt")
    plan = Plan.from_dict(saved["plan"])  # re-planned as the time left (and its 5% reserve) shrank
    assert plan.by_clock and 265 <= plan.total == saved["step"] < 300 and clock.now() < 30
    assert f"{plan.total}/{plan.total} steps" in summary and "stopped" not in summary
    rows = losses(cfg)
    assert rows[-1]["step"] == plan.total and rows[-1]["lr"] <= 0.05 * rows[0]["lr"]


@pytest.mark.slow
def test_a_run_whose_steps_slow_down_still_ends_its_plan_inside_the_budget(config, monkeypatch):
    """A fast machine's many cheap steps slowing as it runs (64 -> 45 steps/s): the plan fitted early is a
    little too long, by less than the 1% that rate noise may move it, and is shortened in time."""
    clock = StepClock(lambda n: 1 / 64 + (1 / 45 - 1 / 64) * min(1.0, n / 3000))
    monkeypatch.setattr(CycleGANTrainer, "train_step",  # the loop's plan is under test, not the networks
                        lambda self, batch, progress: {"loss": torch.tensor(1.0)})
    cfg = config("train.epochs=10000", "train.time_budget_min=1", "train.log_every=2",
                 "train.sample_every=100000", "train.checkpoint_every=100000")
    summary = train.build(cfg, cfg.run_dir, clock=clock)
    total = checkpoint.read(cfg.run_dir / "last.pt")["step"]
    assert "stopped" not in summary and f"{total:,}/{total:,} steps" in summary and clock.now() < 60


def test_without_a_budget_the_epochs_decide_the_schedule(config):
    cfg = config("train.epochs=2", "train.decay_start=0.5")
    train.build(cfg, cfg.run_dir)
    lrs = [r["lr"] for r in losses(cfg)]
    assert len(lrs) == 8 and lrs[:5] == [lrs[0]] * 5  # the lr each step trained at, logged after it
    assert lrs[5:] == pytest.approx([lrs[0] * f for f in (0.75, 0.5, 0.25)])
    assert not Plan.from_dict(checkpoint.read(cfg.run_dir / "last.pt")["plan"]).by_clock


@pytest.mark.parametrize("world_size", [1, 2])
def test_an_epoch_over_the_photos_draws_every_photo_once_and_recycles_the_paintings(config, world_size):
    cfg = config("train.epoch_over=photos", "train.batch_size=1", "train.epochs=2")
    make_jpegs(cfg.raw_dir / "photo_jpg", 12, size=40, seed=1, prefix="photo")  # 12 photos, 8 paintings
    rt = Runtime(device=torch.device("cpu"), world_size=world_size)
    data = train.load_data(cfg, get_family(cfg.train.model), cfg.model_settings, rt)
    assert data.epoch_bank == "photo" and len(data.banks["photo"]) == 12
    assert data.steps_per_epoch == 12 // world_size and data.nominal == 2 * data.steps_per_epoch
    ranks = [train.load_data(cfg, get_family(cfg.train.model), cfg.model_settings,
                             Runtime(device=torch.device("cpu"), rank=r, world_size=world_size)).shards
             for r in range(world_size)]
    for epoch in range(2):
        drawn = {"photo": [], "monet": []}  # in the order the steps draw them, rank after rank
        for at in range(data.steps_per_epoch):
            for shards in ranks:
                drawn["photo"] += shards["photo"].indices(epoch, at).tolist()
                drawn["monet"] += shards["monet"].stream(epoch * data.steps_per_epoch + at).tolist()
        assert sorted(drawn["photo"]) == list(range(12))  # every photo once per epoch
        if epoch == 0:  # 12 paintings drawn from 8: one whole pass, then 4 of a reshuffled second pass
            assert sorted(drawn["monet"][:8]) == list(range(8)) and len(set(drawn["monet"][8:])) == 4


def test_epoch_over_photos_falls_back_to_the_paintings_for_a_family_without_photos(config, capsys):
    cfg = config("train.model=dcgan", "train.epoch_over=photos")
    cpu = Runtime(device=torch.device("cpu"))
    data = train.load_data(cfg, get_family(cfg.train.model), cfg.model_settings, cpu)
    assert data.epoch_bank == "monet" and "dcgan trains on no photos" in capsys.readouterr().out


@pytest.mark.slow
def test_an_epoch_over_the_photos_with_ema_resumes_exactly(config, capsys):
    cfg = config("train.epoch_over=photos", "train.epochs=2", "train.checkpoint_every=3", "train.ema=0.9")
    resume_from_step(cfg, capsys)
    assert checkpoint.read(cfg.run_dir / "last.pt")["ema_updates"] == 8


def test_the_ema_weights_are_the_average_of_the_raw_weights_history():
    trainer, per_step = make_trainer("dcgan", Runtime(device=torch.device("cpu")),
                                     {"width": 4, "z_dim": 8}, image_size=32, batch_size=2, ema=0.8)
    history = [{k: v.clone() for k, v in trainer.nets["G"].state_dict().items()}]
    torch.manual_seed(0)
    for _ in range(5):
        trainer.train_step({k: torch.rand(n, 3, 32, 32) * 2 - 1 for k, n in per_step.items()}, 0.0)
        history.append({k: v.clone() for k, v in trainer.nets["G"].state_dict().items()})
    expected = dict(history[0])
    for update, raw in enumerate(history[1:], 1):
        d = ema_decay(0.8, update)
        expected = {k: (d * expected[k] + (1 - d) * v if v.is_floating_point() and "running" not in k
                        else v) for k, v in raw.items()}
    averaged = trainer.ema["G"].state_dict()
    assert ema_decay(0.8, 100) == 0.8 and ema_decay(0.8, 1) == pytest.approx(2 / 11)
    for k, v in expected.items():
        assert torch.allclose(averaged[k].float(), v.float(), atol=1e-6), k
    assert not torch.equal(averaged[next(iter(averaged))], history[-1][next(iter(averaged))])
    state = trainer.generator_states()
    assert set(state) == {"models", "ema", "ema_updates"} and state["ema_updates"] == 5


@pytest.mark.parametrize("use_ema", [True, False])
def test_generate_uses_the_averaged_weights_unless_told_not_to(config, use_ema):
    cfg = config("train.model=dcgan", "train.ema=0.9", f"generate.use_ema={use_ema}", "zip.min_images=1",
                 "generate.count=3")
    train.build(cfg, cfg.run_dir)
    saved = checkpoint.read(cfg.run_dir / "last.pt")
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt", use_ema=use_ema)
    weights = saved["ema"]["G"] if use_ema else saved["models"]["G"]
    assert loaded.ema is use_ema
    assert all(torch.equal(v, weights[k]) for k, v in loaded.generator.state_dict().items())
    summary = render.build(cfg, cfg.images_dir)
    assert ("averaged (EMA) weights" in summary) is use_ema


def test_new_settings_at_their_defaults_keep_run_names(config):
    cfg = config()
    assert config("train.ema=0", "train.epoch_over=paintings").train_hash() == cfg.train_hash()
    assert config("train.ema=0.999").train_hash() != cfg.train_hash()


@pytest.mark.slow
def test_a_checkpoint_from_before_plans_and_ema_resumes(config, capsys):
    cfg = config("train.checkpoint_every=2", "train.ema=0.9")
    STAGES["train"].run(cfg)
    path = checkpoint.history(cfg.run_dir)[-1]  # step 2 of 4
    old = checkpoint.read(path)
    for key in ("plan", "ema", "ema_updates"):
        del old[key]
    old["training"]["schedulers"] = {"G": {}, "D": {}}
    for later in [*checkpoint.history(cfg.run_dir)[:-1], cfg.run_dir / "last.pt"]:
        later.unlink()
    checkpoint.save(path, old)
    capsys.readouterr()
    train.build(cfg, cfg.run_dir)
    assert "resuming from step 2" in capsys.readouterr().out
    resumed = checkpoint.read(cfg.run_dir / "last.pt")
    assert resumed["step"] == 4 and resumed["plan"]["total"] == 4 and "G_photo2monet" in resumed["ema"]


def test_where_steps_differ_in_cost_the_clock_plans_by_work():
    def cost(progress: float) -> float:  # the second half's steps cost 3 times the first half's
        return 1.0 if progress < 0.5 else 3.0

    # 60 s at 10 units of work a second, 5% kept back: 570 units; a T-step plan costs 0.5 T + 1.5 T = 2 T
    assert fit_to_clock(10_000, 0.5, 0, 10.0, 60, cost=cost).total == 285
    assert fit_to_clock(200, 0.5, 0, 10.0, 60, cost=cost).total == 200  # the nominal length fits
    progan = get_family("progan")
    s = progan.settings(max_size=32, width=8, max_width=16, images_per_phase=64)
    costs = [progan.step_cost(None, s, p) for p in (0.0, 0.3, 0.6, 0.99)]
    assert costs == sorted(costs) and costs[-1] > 10 * costs[0]  # 32x32 steps cost far more than 4x4 ones
    assert get_family("cyclegan").step_cost(None, None, 0.5) is None
