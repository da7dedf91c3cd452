"""The unsb family (Kim et al. 2024): each loss term held to the paper's formula written out here in float64,
the bridge's schedule and steps, the weights that combine the terms, 100 steps under bf16 with the embeddings
and the energy terms in float32; training through the loop, resuming after a kill -9, generating
deterministically from a seed with fewer steps on request, two gloo processes in sync, the settings listed
and checked."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from helpers import (
    TINY_NETWORKS,
    assert_same_weights,
    killed_and_reference,
    make_data,
    make_trainer,
    tiny_config,
    tiny_settings,
    train_two_ranks,
)

from pipeline.cli import main
from pipeline.config import build_config, load_config, tomllib
from pipeline.engine.errors import UserError
from pipeline.stages import STAGES
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.families.unsb.networks import BridgeGenerator, bridge_step, schedule
from pipeline.training.families.unsb.step import energy_loss, sb_loss
from pipeline.training.log import read_csv
from pipeline.training.losses import AdversarialLoss
from pipeline.training.nce import nce_per_image
from pipeline.training.runtime import Runtime

SMALL = TINY_NETWORKS["unsb"]
TINY = tiny_settings("unsb", "train.run=unsb")  # the config fixture's: 8 paintings, 10 photos of 40 px
F64 = torch.float64


def draw(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def log_sum_exp(values: list[float]) -> float:
    return math.log(sum(math.exp(v) for v in values))


# ---------------------------------------------------------------- each loss term against the paper
def test_the_bridges_times_are_the_authors_harmonic_spacing_in_half_to_one():
    # t_0 = 0; t_1..t_T = 1/2 + 1/2 H_(k-1) / H_(T-1), H the harmonic numbers (H_0 = 0): models/sb_model.py
    harmonic = [sum(1 / j for j in range(1, k + 1)) for k in range(5)]
    expected = [0.0] + [0.5 + 0.5 * h / harmonic[-1] for h in harmonic]
    assert schedule(5) == pytest.approx(expected, abs=1e-15)
    assert schedule(5)[:3] == pytest.approx([0, 0.5, 0.5 + 0.5 * 12 / 25]) and schedule(1) == [0.0, 1.0]


@pytest.mark.parametrize("i", [0, 1, 3])
def test_a_step_of_the_bridge_is_the_papers_gaussian_between_the_state_and_the_prediction(i):
    # x_(t_(i+1)) ~ N(s x1 + (1 - s) x_(t_i), s (1 - s) tau (1 - t_i) I), s = (t_(i+1) - t_i) / (1 - t_i)
    times, tau = schedule(5), 0.01
    xt, x1, noise = draw(2, 3, 4, 4, seed=1), draw(2, 3, 4, 4, seed=2), draw(2, 3, 4, 4, seed=3)
    s = (times[i + 1] - times[i]) / (1 - times[i])
    std = math.sqrt(s * (1 - s) * tau * (1 - times[i]))
    expected = [s * b + (1 - s) * a + std * e for a, b, e in zip(xt.flatten().tolist(), x1.flatten().tolist(),
                                                                  noise.flatten().tolist(), strict=True)]
    got = bridge_step(xt, x1, i, 5, tau, noise)
    assert got.dtype == F64 and got.flatten().tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_the_energy_networks_loss_and_the_schrodinger_bridge_term_are_the_formulas():
    """Tolerance 1e-12 (relative): float64 throughout, sums in another order."""
    positive, negative = draw(2, 1, 3, 3, seed=4), draw(2, 1, 3, 3, seed=5)  # E(own pair), E(other pair)
    xt, x1, tau = draw(2, 3, 4, 4, seed=6), draw(2, 3, 4, 4, seed=7), 0.01
    e_own = mean(positive.flatten().tolist())
    lse = log_sum_exp(negative.flatten().tolist())  # over every patch of the batch
    assert energy_loss(positive, negative).item() == pytest.approx(-e_own + lse + lse**2, rel=1e-12)
    pairs = zip(xt.flatten().tolist(), x1.flatten().tolist(), strict=True)
    transport = mean([(a - b) ** 2 for a, b in pairs])
    for t in range(5):
        # L_SB: the paper's transport cost and entropy, weighed as the authors' code does (docs/training.md):
        # tau E||x_t - x_1||^2 - tau (T - t) / T H, H estimated as E(own) - logsumexp E(other)
        expected = tau * transport - tau * (5 - t) / 5 * (e_own - lse)
        assert sb_loss(positive, negative, xt, x1, t, 5, tau).item() == pytest.approx(expected, rel=1e-12)


def test_patch_nce_and_the_adversarial_terms_are_the_formulas():
    """Both are computed in float32 whatever they are given (shared with CUT): tolerance 1e-5 and 1e-6."""
    q = [torch.nn.functional.normalize(draw(2, 6, 4, seed=10 + k), dim=-1) for k in range(2)]  # 2 layers
    k = [torch.nn.functional.normalize(draw(2, 6, 4, seed=20 + k), dim=-1) for k in range(2)]
    expected = []
    for n in range(2):
        per_layer = []
        for layer in range(2):
            qs, ks = q[layer][n].tolist(), k[layer][n].tolist()
            logits = [[sum(a * b for a, b in zip(qi, kj, strict=True)) / 0.07 for kj in ks] for qi in qs]
            per_layer.append(mean([log_sum_exp(row) - row[i] for i, row in enumerate(logits)]))
        expected.append(mean(per_layer))
    assert nce_per_image(q, k, 0.07).tolist() == pytest.approx(expected, rel=1e-5)
    real, fake = draw(2, 1, 3, 3, seed=8), draw(2, 1, 3, 3, seed=9)
    r, f = real.flatten().tolist(), fake.flatten().tolist()
    adv = AdversarialLoss("lsgan")
    assert adv.d_loss(real, fake).item() == pytest.approx(
        0.5 * (mean([(v - 1) ** 2 for v in r]) + mean([v**2 for v in f])), rel=1e-6)
    assert adv.g_loss(fake).item() == pytest.approx(mean([(v - 1) ** 2 for v in f]), rel=1e-6)


def test_the_step_weighs_the_terms_as_the_paper_with_the_given_lambdas(monkeypatch):
    trainer, batch = small_trainer(lambda_sb=0.7, lambda_nce=1.3)
    updates: dict[str, torch.Tensor] = {}
    update = trainer.update
    monkeypatch.setattr(trainer, "update", lambda loss, which: (updates.__setitem__(which, loss.detach()),
                                                                 update(loss, which)))
    terms = trainer.train_step(batch, 0.0)
    g = terms["G_adv"] + 0.7 * terms["SB"] + 1.3 * (terms["NCE"] + terms["NCE_idt"]) / 2
    assert updates["G"].item() == pytest.approx(g.item(), rel=1e-6)
    assert updates["D"].item() == pytest.approx((terms["D"] + terms["E"]).item(), rel=1e-6)
    assert terms["NCE_idt"] > 0 and terms["E"] != 0


# ---------------------------------------------------------------- the networks and AMP
def small_trainer(rt: Runtime | None = None, **settings):
    torch.manual_seed(0)
    trainer, per_step = make_trainer("unsb", rt or Runtime(device=torch.device("cpu")), {**SMALL, **settings},
                                     image_size=32, batch_size=1)
    batch = {k: torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(i)) * 2 - 1
             for i, (k, n) in enumerate(per_step.items())}
    return trainer, batch


def test_one_step_draws_two_batches_of_photos_and_trains_g_d_e_and_the_heads():
    trainer, batch = small_trainer()
    assert {k: v.shape[0] for k, v in batch.items()} == {"monet": 1, "photo": 2}
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in trainer.nets.items()}
    trainer.train_step(batch, 0.0)
    for name, net in trainer.nets.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)]
        assert any(changed), name
    critics = trainer.nets["D"]
    energy = {id(p) for p in critics.energy.parameters()}
    in_d = {id(p) for g in trainer.optimizers["D"].param_groups for p in g["params"]}
    assert energy <= in_d  # E learns with D's optimiser, apart from G's


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two contend with the other processes' work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_100_steps_under_bf16_stay_finite_with_embeddings_and_energy_in_float32(one_thread):
    trainer, batch = small_trainer(Runtime(device=torch.device("cpu"), amp_dtype=torch.bfloat16))
    seen: dict[str, torch.dtype] = {}
    G, critics = trainer.nets["G"], trainer.nets["D"]
    for name, module in {"time": G.time_mlp, "noise": G.z_mlp, "D time": critics.patch.time_mlp,
                         "E time": critics.energy.time_mlp, "conv": G.stem[1]}.items():
        module.register_forward_hook(lambda m, i, out, name=name: seen.__setitem__(name, out.dtype))
    for i in range(100):
        terms = trainer.train_step(batch, i / 100)
        assert all(torch.isfinite(v) for v in terms.values()), (i, terms)
    assert all(torch.isfinite(p).all() for net in trainer.nets.values() for p in net.parameters())
    assert seen == {"time": torch.float32, "noise": torch.float32, "D time": torch.float32,
                    "E time": torch.float32, "conv": torch.bfloat16}  # the convolutions did run in bf16
    assert terms["SB"].dtype == terms["E"].dtype == torch.float32


def test_the_generator_runs_the_bridge_deterministically_from_its_seed():
    torch.manual_seed(0)
    G = BridgeGenerator(4, 1, steps=3, tau=0.01).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        a = G.sample_with(0, 5)(x)
        state = torch.get_rng_state()
        b = G.sample_with(0, 5)(x)
        assert torch.equal(torch.get_rng_state(), state)  # its own noise, never the global RNG's
        other = G.sample_with(0, 6)(x)
        one = G.sample_with(1, 5)(x)
        assert torch.equal(a, b) and not torch.equal(a, other) and not torch.equal(a, one)
        # one step is one prediction from the photo at step 0, with the first noise of the seed
        z = G.noise(2, x, torch.Generator().manual_seed(5))
        assert torch.equal(one, G(x, torch.zeros(2, dtype=torch.long), z))


# ---------------------------------------------------------------- training, generating, settings
@pytest.mark.slow
def test_a_trained_run_generates_the_same_jpegs_from_the_same_seed_and_zips(config, one_thread):
    cfg = config("train.epochs=1", "zip.min_images=1", "zip.max_images=20", "generate.count=10")
    assert "unsb 8/8 steps" in train.build(cfg, cfg.run_dir)
    rows = read_csv(cfg.run_dir / "losses.csv")
    assert set(rows[0]) >= {"G_adv", "SB", "NCE", "NCE_idt", "D", "E"} and len(rows) == 8
    assert set(checkpoint.read(cfg.run_dir / "last.pt")["models"]) == {"G", "D", "F"}
    made = {p.name: p.read_bytes() for p in sorted(STAGES["generate"].run(cfg).glob("*.jpg"))}
    assert len(made) == 10  # every photo
    again = {p.name: p.read_bytes() for p in STAGES["generate"].run(cfg, force=True).glob("*.jpg")}
    assert again == made
    for other in ("generate.seed=1", "generate.steps=1"):
        changed = {p.name: p.read_bytes() for p in STAGES["generate"].run(config(other)).glob("*.jpg")}
        assert changed.keys() == made.keys() and changed != made, other
    assert STAGES["zip"].run(cfg).is_file()
    with pytest.raises(UserError, match=r"^generate.steps=3, but this run's bridge has unsb.steps=2: set "
                                        r"generate.steps to 1..2 \(0 = all 2\)$"):
        STAGES["generate"].run(config("generate.steps=3"))


@pytest.mark.slow
def test_a_killed_run_resumes_through_the_cli_to_the_uninterrupted_weights(tmp_path):
    make_data(tmp_path)
    long = ("train.epochs=2", "train.checkpoint_every=3", "train.sample_every=1000", "train.ema=0.9")
    run_dir, reference = killed_and_reference(tmp_path, (*TINY, *long), total=16)
    ours, theirs = checkpoint.read(run_dir / "last.pt"), checkpoint.read(reference / "last.pt")
    assert set(ours["models"]) == {"G", "D", "F"}
    assert_same_weights(theirs["models"], ours["models"])
    assert_same_weights(theirs["ema"], ours["ema"])


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync(tmp_path):
    make_data(tmp_path)
    # each rank draws its own step of the bridge and its own noise; DDP keeps the weights equal
    ranks = train_two_ranks(tmp_path, (*TINY, "train.diffaugment=translation"))
    assert set(ranks[0]) == {"G", "D", "F"}
    for name, weights in ranks[0].items():
        assert all(torch.equal(v, ranks[1][name][k]) for k, v in weights.items()), name
    saved = checkpoint.read(tiny_config(tmp_path, *TINY).run_dir / "last.pt")
    assert saved["step"] == 4 and len(saved["training"]["ranks"]) == 2  # 8 paintings / (1 x 2 ranks)


def test_the_families_command_lists_the_settings_with_the_papers_defaults(capsys):
    assert main(["families", "--settings", "unsb"]) == 0
    out = capsys.readouterr().out
    for key, value in (("steps", "5"), ("tau", "0.01"), ("lambda_sb", "1.0"), ("lambda_nce", "1.0"),
                       ("nce_layers", '"input, down1, down2, res1, res5"')):
        assert re.search(rf"^{key} = {re.escape(value)} +# ", out, re.M), key
    assert build_config(tomllib.loads(out)).families.unsb == load_config("default").families.unsb


@pytest.mark.parametrize("override, message", [
    ("unsb.steps=0", "setting unsb.steps must be >= 1 (the paper's default: 5)"),
    ("unsb.tau=0", "setting unsb.tau must be > 0 (the paper's default: 0.01)"),
    ("unsb.nce_layers=input,res2", "setting unsb.nce_layers must name layers of the encoder of a generator "
                                   "with unsb.n_blocks=1: input, down1, down2, res1..res1, e.g. "),
    ("generate.steps=-1", "setting generate.steps must be >= 0"),
])
def test_a_wrong_setting_is_one_line_naming_the_key(override, message):
    with pytest.raises(UserError) as err:
        tiny_config(Path("/nonexistent"), *TINY, override)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
