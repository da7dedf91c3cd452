"""The progan family: networks that hold every resolution's layers and run one phase's, fade-ins that start
where the resolution below left off, the phase read from progress (a compressed plan compresses every phase),
the paper's minibatch std, equalised learning rate and pixel norm; it trains, marks its phases in the log and
the plot, resumes exactly in the middle of a fade-in, runs under fp16 and two gloo processes, and generates
submission-size JPEGs under the memorisation guard."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    assert_same_weights,
    make_jpegs,
    planted_copy_is_made_again,
    resume_from_step,
    tiny_config,
    tiny_settings,
    train_two_ranks,
)
from PIL import Image

from pipeline.config import TrainConfig
from pipeline.engine.errors import UserError
from pipeline.images import check_image, list_images
from pipeline.stages import STAGES
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.families.progan.networks import (
    EqualizedConv2d,
    MinibatchStdDev,
    PixelNorm,
    build_critic,
    build_generator,
)
from pipeline.training.families.progan.schedule import Schedule
from pipeline.training.families.progan.settings import ProGANSettings
from pipeline.training.families.progan.step import ProGANTrainer
from pipeline.training.family import get_family
from pipeline.training.log import phase_changes, read_csv
from pipeline.training.plan import Plan
from pipeline.training.runtime import Runtime

# Grown to 16 px only: the shared resume helper trains 8 steps, and 16 px is the largest size whose
# schedule fits 8 steps with a fade-in longer than one step: 4x4 (2 steps at batch 2), the 8x8 fade-in (2)
# and stable phase (2), the 16x16 fade-in (1) and stable phase (1) at batch 4; step 3 is half-way through
# the 8x8 fade-in. train.image_size=64 on purpose: progan.max_size must win.
TINY = tiny_settings("progan")


def small(**changes) -> ProGANSettings:
    return ProGANSettings(**{"max_size": 64, "z_dim": 8, "width": 4, "max_width": 16, "batch": "4:4,32:2",
                             "images_per_phase": 8, **changes})


# ---------------------------------------------------------------- the networks, phase by phase
def test_each_phase_runs_its_own_layers_at_its_resolution_and_a_fade_in_starts_where_the_last_left_off():
    torch.manual_seed(0)
    s = small()
    G, D = build_generator(s), build_critic(s)
    assert [m.weight.shape[1] for m in G.to_rgb] == [16, 16, 16, 8, 4]  # halving from 16 px up to width
    z = torch.randn(4, 8)
    with torch.no_grad():
        assert G(z).shape == (4, 3, 64, 64) and D(G(z)).shape == (4, 1)  # plain forward: the last phase
        for r in s.resolutions:
            g, d = G.phase(r, fading=False), D.phase(r, fading=False)
            assert g(z).shape == (4, 3, r, r) and d(g(z)).shape == (4, 1), r
            used = {id(p) for p in (*g.parameters(), *d.parameters())}
            if r < 64:  # only the layers up to r: the rest would leave DDP waiting for their gradients
                assert {id(p) for p in G.blocks[-1].parameters()}.isdisjoint(used)
            if r == 4:
                continue
            low = G.phase(r // 2, fading=False)(z)
            fading = G.phase(r, fading=True)
            assert torch.allclose(fading(z, torch.tensor(0.0)), F.interpolate(low, scale_factor=2.0))
            assert torch.allclose(fading(z, torch.tensor(1.0)), g(z), atol=1e-6)
            half = fading(z, torch.tensor(0.5))
            assert torch.allclose(half, (F.interpolate(low, scale_factor=2.0) + g(z)) / 2, atol=1e-6)
            x = torch.randn(4, 3, r, r)
            critic = D.phase(r, fading=True)
            assert torch.allclose(critic(x, torch.tensor(0.0)), D.phase(r // 2, False)(F.avg_pool2d(x, 2)),
                                  atol=1e-6)
            assert torch.allclose(critic(x, torch.tensor(1.0)), d(x), atol=1e-6)
    assert set(G.state_dict()) == set(build_generator(s).state_dict())  # one shape from the first step


def test_real_images_are_averaged_down_to_the_phase_and_faded_in_as_the_generators_output_is():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    at16 = ProGANTrainer.real_images(x, 16, None)
    assert torch.allclose(at16, F.avg_pool2d(x, 4))  # area average: what a 16 px image of it is
    low = F.interpolate(F.avg_pool2d(x, 8), scale_factor=2.0)  # 8 px, enlarged as G enlarges its 8 px output
    assert torch.allclose(ProGANTrainer.real_images(x, 16, torch.tensor(0.0)), low, atol=1e-6)
    assert torch.allclose(ProGANTrainer.real_images(x, 16, torch.tensor(0.25)), 0.75 * low + 0.25 * at16,
                          atol=1e-6)
    assert torch.equal(ProGANTrainer.real_images(x, 64, None), x)


def test_the_minibatch_std_channel_is_each_groups_spread():
    torch.manual_seed(0)
    x = torch.randn(8, 5, 3, 3)
    y = MinibatchStdDev()(x)
    assert y.shape == (8, 6, 3, 3) and torch.equal(y[:, :5], x)
    # groups of 4 images 2 apart ({0, 2, 4, 6}, {1, 3, 5, 7}), as the paper reshapes them
    for first in (0, 1):
        group = x[first::2]
        expected = (group.var(0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(y[first::2, 5], expected.expand(4, 3, 3))
    same = MinibatchStdDev()(x[:1].repeat(6, 1, 1, 1))  # 6 images: groups of 3; no variety: ~0
    assert torch.allclose(same[:, 5], torch.full((6, 3, 3), 1e-4))
    assert torch.allclose(MinibatchStdDev()(x[:5])[:, 5], torch.full((5, 3, 3), 1e-4))  # 5: groups of 1


def test_equalised_learning_rate_scales_unit_weights_at_run_time():
    torch.manual_seed(0)
    conv = EqualizedConv2d(32, 8, 3, padding=1)
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.05)  # N(0, 1) as stored
    assert conv.scale == pytest.approx(math.sqrt(2 / (32 * 9)))  # He's constant
    x = torch.randn(2, 32, 5, 5)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1), atol=1e-6)
    conv(x).sum().backward()
    effective = (conv.weight.detach() * conv.scale).requires_grad_(True)
    F.conv2d(x, effective, conv.bias.detach(), padding=1).sum().backward()
    assert torch.allclose(conv.weight.grad, effective.grad * conv.scale, atol=1e-5)  # the same step size


def test_pixel_norm_gives_each_pixel_unit_mean_square():
    y = PixelNorm()(torch.randn(3, 16, 4, 4) * 10)
    assert torch.allclose(y.pow(2).mean(dim=1), torch.ones(3, 4, 4), atol=1e-4)


# ---------------------------------------------------------------- the schedule
def test_the_phase_follows_progress_through_the_nominal_schedule_and_a_compressed_plan():
    s, family = small(), get_family("progan")
    schedule = Schedule(s)
    assert [(p.resolution, p.fading, p.batch, p.steps) for p in schedule.phases] == [
        (4, False, 4, 2), (8, True, 4, 2), (8, False, 4, 2), (16, True, 4, 2), (16, False, 4, 2),
        (32, True, 2, 4), (32, False, 2, 4), (64, True, 2, 4), (64, False, 2, 4)]
    t = TrainConfig(model="progan", epochs=50)
    assert family.total_steps(t, s, steps_per_epoch=7) == schedule.total == 26  # not train.epochs'
    assert family.images_per_step(t, s) == {"monet": 4}  # the largest batch; a phase takes its first ones
    assert family.data_size(t, s) == 64
    assert [str(schedule.at(step / 26)) for step in (0, 2, 3, 4, 19, 21, 25)] == [
        "4x4, stable", "8x8, fade-in 0%", "8x8, fade-in 50%", "8x8, stable", "64x64, fade-in 25%",
        "64x64, fade-in 75%", "64x64, stable"]
    for plan in (Plan(26, 0.5), Plan(13, 0.5), Plan(104, 0.5)):  # nominal, a budget's half, 4x as long
        positions = [schedule.at(plan.progress(step)) for step in range(plan.total)]
        for phase in schedule.phases:  # every phase, in order, for its share of the plan
            share = sum(p.phase == phase for p in positions) / plan.total
            assert share == pytest.approx(phase.steps / 26, abs=1.01 / plan.total), (plan, phase)
        alphas = [p.alpha for p in positions if p.phase == schedule.phases[-2]]
        assert alphas == sorted(set(alphas)) and 0 <= alphas[0] < alphas[-1] < 1  # rising through it


def test_settings_are_checked():
    assert small(batch="4:16,32:8").batches() == {4: 16, 8: 16, 16: 16, 32: 8, 64: 8}
    for key, value, message in [("max_size", 48, "power of two in 8..1024"),
                                ("batch", "8:4", "batch at 4x4"), ("batch", "4:x", "'4:x'"),
                                ("batch", "4:2,6:2", "'6:2'"), ("max_width", 2, ">= progan.width")]:
        with pytest.raises(UserError, match=f"setting progan.{key} must.*{message}"):
            small(**{key: value})
    with pytest.raises(UserError, match="setting progan.images_per_phase must be >= 1"):
        tiny_config(Path("/nonexistent"), *TINY, "progan.images_per_phase=0")


# ---------------------------------------------------------------- the trainer
def make_trainer(rt: Runtime):
    family = get_family("progan")
    s = small(max_size=16, batch="4:2,16:4", images_per_phase=4)
    return family.trainer_class()(family, TrainConfig(model="progan", lr=5.0, beta1=0.9), s, rt)


def steps_through_every_phase(fam) -> None:
    total = fam.schedule.total
    for step in range(total):
        losses = fam.train_step({"monet": torch.rand(4, 3, 16, 16) * 2 - 1}, step / total)
        assert set(losses) == {"G", "D", "gp"} and all(torch.isfinite(v) for v in losses.values()), step


def test_adam_at_the_papers_constant_rate_trains_every_layer():
    torch.manual_seed(0)
    fam = make_trainer(Runtime(device=torch.device("cpu")))
    for opt in fam.optimizers.values():  # not train.lr and beta1
        assert opt.param_groups[0]["lr"] == 1e-3 and opt.param_groups[0]["betas"] == (0.0, 0.99)
    fam.set_lr_factor(0.5)  # the plan's decay: ProGAN keeps its rate
    assert fam.lr() == 1e-3
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in fam.nets.items()}
    steps_through_every_phase(fam)
    for n, net in fam.nets.items():  # every resolution's layers have learned in their phases
        assert all(not torch.equal(a, b) for a, b in zip(before[n], net.parameters(), strict=True)), n


def test_fp16_with_a_grad_scaler_steps_every_phase():
    fam = make_trainer(Runtime(device=torch.device("cpu"), amp_dtype=torch.float16))
    assert fam.scaler.is_enabled()
    steps_through_every_phase(fam)


def test_it_trains_logs_its_phases_and_samples_at_max_size(config):
    cfg = config()
    cpu = Runtime(device=torch.device("cpu"))
    data = train.load_data(cfg, get_family(cfg.train.model), cfg.model_settings, cpu)
    assert data.batch(0)["monet"].shape == (4, 3, 16, 16)  # at progan.max_size, not train.image_size
    assert "8/8 steps" in train.build(cfg, cfg.run_dir)
    rows = read_csv(cfg.run_dir / "losses.csv")
    assert [int(r["resolution"]) for r in rows] == [4, 4, 8, 8, 8, 8, 16, 16]
    assert [float(r["alpha"]) for r in rows] == [1, 1, 0, 0.5, 1, 1, 0, 1]
    assert phase_changes(rows) == {3: "8x8", 7: "16x16"}  # the plot's marks
    for name in ("config.toml", "losses.csv", "loss_plot.png", "samples.gif", "last.pt"):
        assert (cfg.run_dir / name).is_file(), name
    with Image.open(cfg.run_dir / "samples" / "step_000002.png") as grid:  # a 4x4 phase's grid...
        assert grid.size == (4 * (16 + 2) + 2,) * 2  # ...16 images enlarged to 16 px, 4 a row
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt")
    assert loaded.kind == "progan" and loaded.z_dim == 8 and loaded.step == 8
    with torch.no_grad():
        assert loaded.generator(torch.randn(2, 8)).shape == (2, 3, 16, 16)


def test_resumed_in_a_fade_in_it_says_where_and_repeats_the_uninterrupted_run(config, capsys):
    cfg = config()
    resumed = resume_from_step(cfg, capsys)
    assert_same_weights(resumed.uninterrupted, resumed.resumed)
    assert "resuming from step 3 (8x8, fade-in 50%)" in resumed.out


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync(tmp_path):
    make_jpegs(tmp_path / "data" / "augmented" / "monet", 8, size=40)
    ranks = train_two_ranks(tmp_path, TINY)  # each phase's layers alone under DDP: no unused parameters
    for name, weights in ranks[0].items():
        assert all(torch.equal(v, ranks[1][name][k]) for k, v in weights.items()), name
    saved = checkpoint.read(tiny_config(tmp_path, *TINY).run_dir / "last.pt")
    assert saved["step"] == 8  # the schedule's length, whatever the number of processes
    assert all(torch.equal(v, ranks[0]["G"][k]) for k, v in saved["models"]["G"].items())


@pytest.mark.slow
def test_generate_scales_to_the_submission_size_and_the_guard_watches_it(config, inception_weights, capsys):
    settings = ("generate.count=5", "zip.min_images=1", "zip.max_images=10",
                f"score.weights={inception_weights}")
    cfg = config(*settings)
    train.build(cfg, cfg.run_dir)
    make_jpegs(cfg.raw_dir / "monet_jpg", 2, size=32, seed=5, prefix="monet")
    planted_copy_is_made_again(cfg, config(*settings, "generate.max_memorization=0.0001"), capsys)
    assert len(list_images(cfg.images_dir)) == 5
    assert all(check_image(p, 256) is None for p in list_images(cfg.images_dir))
    assert STAGES["zip"].run(cfg).is_file()