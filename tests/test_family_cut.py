"""The cut family (CUT and FastCUT): the PatchNCE loss against its definition and the properties that catch a
wrong one, the generator's encoder features, the projection heads made once and kept in checkpoints, what
cut.mode sets, FastCUT's flip, the layers named as the docs list them, the authors' initialisation;
training, resuming exactly (also after a kill -9), AMP, two gloo processes, generate and zip."""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    REPO,
    TINY_NETWORKS,
    assert_same_weights,
    killed_and_reference,
    make_data,
    make_trainer,
    resume_from_step,
    tiny_config,
    tiny_settings,
    train_two_ranks,
)
from torch import nn

from pipeline.config import TrainConfig, build_config, to_toml, tomllib
from pipeline.engine.errors import UserError
from pipeline.stages import STAGES
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.families.cut import step as cut_step
from pipeline.training.families.cut.networks import CUTGenerator, make_heads
from pipeline.training.families.cut.settings import FIRST_BLOCK, PAPER_LAYERS, CUTSettings
from pipeline.training.family import get_family
from pipeline.training.log import read_csv
from pipeline.training.nce import patch_nce, sample_positions
from pipeline.training.networks import ResnetBlock, ResnetGenerator
from pipeline.training.runtime import Runtime

LAYERS = (0, 4, 7, 10, 14)  # the paper's cut.nce_layers (input, down1, down2, res1, res5) in this generator
SMALL = TINY_NETWORKS["cut"]
TINY = tiny_settings("cut", "train.run=cut")  # the config fixture's: 8 paintings, 10 photos of 40 px
CPU = Runtime(device=torch.device("cpu"))


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def small_trainer(rt: Runtime = CPU, **settings):
    torch.manual_seed(0)
    trainer, per_step = make_trainer("cut", rt, {**SMALL, **settings}, image_size=32, batch_size=2)
    batch = {k: torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(i)) * 2 - 1
             for i, (k, n) in enumerate(per_step.items())}
    return trainer, batch


# ---------------------------------------------------------------- the PatchNCE loss
def test_patch_nce_is_the_cross_entropy_of_the_positive_among_the_images_own_patches():
    q, k, t = unit(2, 5, 8, seed=1), unit(2, 5, 8, seed=2), 0.07
    expected = torch.empty(2, 5)
    for n in range(2):
        for i in range(5):
            logits = torch.stack([q[n, i] @ k[n, j] for j in [i, *(j for j in range(5) if j != i)]]) / t
            expected[n, i] = torch.logsumexp(logits, 0) - logits[0]
    assert torch.allclose(patch_nce(q, k, t), expected, atol=1e-5)


def test_a_translation_that_keeps_each_patch_scores_lower_than_its_patches_shuffled():
    keys = unit(2, 64, 16)
    kept = F.normalize(keys + 0.3 * unit(2, 64, 16, seed=3), dim=-1)  # each patch's content, a little changed
    shuffled = kept[:, torch.randperm(64, generator=torch.Generator().manual_seed(4))]
    assert patch_nce(kept, keys, 0.07).mean() < 0.5 * patch_nce(shuffled, keys, 0.07).mean()
    # the same through a generator's features and the heads: the input's own features against themselves
    g = CUTGenerator(4, 5)
    heads = make_heads(CUTGenerator(4, 5), TrainConfig(model="cut"), CUTSettings(**SMALL))
    with torch.no_grad():
        feats = g(torch.rand(2, 3, 32, 32) * 2 - 1, LAYERS)
        where = sample_positions(feats, 64)
        keys = heads(feats, where)
        moved = heads(feats, [w[torch.randperm(len(w))] for w in where])
    for same, other, key in zip(keys, moved, keys, strict=True):  # layer by layer
        assert patch_nce(same, key, 0.07).mean() < patch_nce(other, key, 0.07).mean()


def test_with_identical_features_the_positive_wins_as_the_temperature_falls():
    k = unit(2, 32, 16)
    losses = [patch_nce(k, k, t).max().item() for t in (1.0, 0.07, 0.01, 0.001)]
    assert losses == sorted(losses, reverse=True) and losses[0] > 1 and losses[-1] < 1e-6


def test_the_negatives_come_from_the_same_image_only():
    q, k = unit(2, 16, 8, seed=5), unit(2, 16, 8, seed=6)
    before = patch_nce(q, k, 0.07)
    q[1], k[1] = unit(16, 8, seed=7), unit(16, 8, seed=8)  # the second image's features change
    after = patch_nce(q, k, 0.07)
    assert torch.equal(after[0], before[0]) and not torch.allclose(after[1], before[1])


def test_positions_are_sampled_once_per_layer_and_capped_by_its_size():
    feats = [torch.zeros(2, 3, 38, 38), torch.zeros(2, 16, 4, 4)]
    first, small = sample_positions(feats, 64)
    assert len(set(first.tolist())) == 64 and first.max() < 38 * 38
    assert sorted(small.tolist()) == list(range(16))  # fewer than asked: every position


# ---------------------------------------------------------------- the networks
def test_the_resnet_generator_gives_its_encoder_features_without_new_weights():
    g, cut = ResnetGenerator(4, 5), CUTGenerator(4, 5)
    assert g.state_dict().keys() == cut.state_dict().keys()  # a cyclegan generator's weights load as they are
    cut.load_state_dict(g.state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(cut(x), g(x))
    for layers in (LAYERS, (2, 8)):  # 2 and 8: norms that an in-place ReLU follows
        for i, feat in zip(layers, g.features(x, layers), strict=True):
            assert torch.equal(feat, g.model[: i + 1](x)), i
    feats = g.features(x, LAYERS)
    assert [f.shape[1] for f in feats] == g.feature_widths(LAYERS) == [3, 8, 16, 16, 16]
    assert [f.shape[-1] for f in feats] == [38, 16, 8, 8, 8]  # padded input, 1/2, then 1/4 of 32 px


def documented_layers() -> dict[str, int]:
    """The table of cut.nce_layers' names in docs/training.md's CUT section: name -> the index it lists."""
    text = (REPO / "docs" / "training.md").read_text()
    section = text[text.index("## CUT and FastCUT"):text.index("## Recipes")]
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| `(\w+)` \| (\d+): ", section, re.M)}


def test_the_layer_names_resolve_to_the_modules_the_docs_list():
    model, names = ResnetGenerator(4, 9).model, [n.strip() for n in PAPER_LAYERS.split(",")]
    resolved = {name: CUTSettings(nce_layers=name).layers[0] for name in names}
    for name, i in resolved.items():
        print(f"cut.nce_layers {name:>5} -> model[{i}] {model[i]}")
    assert CUTSettings().nce_layers == PAPER_LAYERS and CUTSettings().layers == LAYERS
    assert resolved == documented_layers() == dict(zip(names, LAYERS, strict=True))
    # what the paper's names mean: the padded input, the two downsampling convolutions, blocks 1 and 5
    assert isinstance(model[resolved["input"]], nn.ReflectionPad2d) and resolved["input"] == 0
    strided = [i for i, m in enumerate(model) if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert strided == [resolved["down1"], resolved["down2"]]
    assert [model[i].out_channels for i in strided] == [8, 16]
    blocks = [i for i, m in enumerate(model) if isinstance(m, ResnetBlock)]
    assert (resolved["res1"], resolved["res5"]) == (blocks[0], blocks[4]) and len(blocks) == 9


@pytest.mark.parametrize("n_blocks", [0, 1, 7])
def test_the_encoder_ends_where_the_settings_check_says(n_blocks):
    model = ResnetGenerator(4, n_blocks).model
    first_up = next(i for i, m in enumerate(model) if isinstance(m, nn.ConvTranspose2d))
    assert first_up == FIRST_BLOCK + n_blocks
    assert CUTSettings(n_blocks=n_blocks, nce_layers=f"0,{first_up - 1}").layers == (0, first_up - 1)
    if n_blocks:
        assert CUTSettings(n_blocks=n_blocks, nce_layers=f"input, res{n_blocks}").layers == (0, first_up - 1)
    for beyond in (str(first_up), f"res{n_blocks + 1}"):
        with pytest.raises(UserError, match=rf"^setting cut.nce_layers must name layers of the encoder of a "
                                            rf"generator with cut.n_blocks={n_blocks}: .* \(or indices "
                                            rf"0\.\.{first_up - 1}\)"):
            CUTSettings(n_blocks=n_blocks, nce_layers=f"input, {beyond}")


def authors_std(layer: nn.Module) -> float:
    """The authors' init_weights(net, init_type="xavier", init_gain=0.02), transcribed: Xavier-normal, std =
    gain x sqrt(2 / (fan_in + fan_out)), each fan its channels times the kernel's taps."""
    w = layer.weight
    return 0.02 * math.sqrt(2 / ((w.shape[0] + w.shape[1]) * w[0][0].numel()))


def weighted_layers(trainer) -> dict[str, nn.Module]:
    return {f"{net}.{name}": m for net in ("G", "D", "F") for name, m in trainer.nets[net].named_modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))}


def test_g_d_and_the_heads_start_as_the_authors_initialise_them(tmp_path):
    cfg = tiny_config(tmp_path, *TINY, "train.init=xavier")
    family = get_family(cfg.train.model)
    torch.manual_seed(0)
    trainer = family.trainer_class()(family, cfg.train, cfg.model_settings, CPU)  # as the loop builds it
    layers = weighted_layers(trainer)
    assert len(layers) == 16 + 5 + 10  # G's convolutions, D's, two linear layers per head
    for name, m in layers.items():
        n, std = m.weight.numel(), m.weight.detach().pow(2).mean().sqrt().item()
        assert abs(std / authors_std(m) - 1) < 4 / math.sqrt(2 * n), (name, std, authors_std(m))
        assert not m.bias.any(), name
    wide = layers["G.model.10.body.1"]  # a residual block's first 3x3 16 -> 16 convolution
    print(f"3x3 16 -> 16: std {wide.weight.std():.5f}, the authors' {authors_std(wide):.5f}")
    # train.init not given: the family's own, the authors'; normal: N(0, 0.02) everywhere
    torch.manual_seed(0)
    default = weighted_layers(make_trainer("cut", CPU, SMALL, image_size=32, batch_size=2)[0])
    assert all(torch.equal(m.weight, default[name].weight) for name, m in layers.items())
    torch.manual_seed(0)
    normal = weighted_layers(make_trainer("cut", CPU, SMALL, image_size=32, batch_size=2, init="normal")[0])
    assert all(abs(m.weight.std().item() / 0.02 - 1) < 4 / math.sqrt(2 * m.weight.numel())
               for m in normal.values())
    assert normal["G.model.10.body.1"].weight.std() > 10 * wide.weight.std()
    batch = {k: torch.rand(2, 3, 32, 32) * 2 - 1 for k in ("photo", "monet")}
    assert all(torch.isfinite(v) for v in trainer.train_step(batch, 0.0).values())  # and it trains


def test_the_heads_are_made_once_trained_by_the_generators_optimiser_and_kept_in_the_state():
    trainer, batch = small_trainer()
    heads = trainer.nets["F"]
    assert trainer.train_nets["F"] is heads and "F" not in trainer.ema
    assert [mlp[0].in_features for mlp in heads.mlps] == [3, 8, 16, 16, 16]
    assert all(mlp[2].out_features == 32 for mlp in heads.mlps)
    params = list(heads.parameters())
    in_g = {id(p) for group in trainer.optimizers["G"].param_groups for p in group["params"]}
    in_d = {id(p) for group in trainer.optimizers["D"].param_groups for p in group["params"]}
    assert {id(p) for p in params} <= in_g and not {id(p) for p in params} & in_d
    before = [p.detach().clone() for p in params]
    for i in range(3):
        trainer.train_step(batch, i / 10)
    assert trainer.nets["F"] is heads and all(a is b for a, b in zip(params, heads.parameters(), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(before, params, strict=True))  # every head learned
    state = trainer.state_dict()
    other, _ = small_trainer()
    other.load_state_dict(state)
    assert_same_weights({"F": state["models"]["F"]}, {"F": other.nets["F"].state_dict()})


def test_fastcut_flips_the_input_and_compares_the_flipped_back_features_with_the_unflipped_keys(monkeypatch):
    trainer, batch = small_trainer(mode="fastcut")
    seen: dict = {}
    nce_per_image = cut_step.nce_per_image

    def positions(found, n):
        seen["found"] = [f.detach().clone() for f in found]
        seen["where"] = sample_positions(found, n)
        return seen["where"]

    def nce(queries, keys, t):
        seen["keys"] = keys
        return nce_per_image(queries, keys, t)

    monkeypatch.setattr(cut_step, "sample_positions", positions)
    monkeypatch.setattr(cut_step, "nce_per_image", nce)
    # the coin says flip: every torch.rand in the step draws zeros, of its size and on its device
    monkeypatch.setattr(torch, "rand", lambda *size, generator=None, **options: torch.zeros(*size, **options))
    g, heads = copy.deepcopy(trainer.nets["G"]), copy.deepcopy(trainer.nets["F"])
    trainer.train_step(batch, 0.0)
    photo = batch["photo"]
    with torch.no_grad():
        out = g(photo.flip(3))
        flipped_back = [f.flip(3) for f in g(out, LAYERS)]
        keys = heads(g(photo, LAYERS), seen["where"])
    for found, expected in zip(seen["found"], flipped_back, strict=True):
        assert torch.allclose(found, expected, atol=1e-6)
    for got, expected in zip(seen["keys"], keys, strict=True):
        assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(seen["found"][1], g(out, LAYERS)[1], atol=1e-3)  # it did flip back


# ---------------------------------------------------------------- settings
def test_mode_sets_the_keys_not_given_and_given_keys_win(tmp_path):
    assert (CUTSettings().lambda_nce, CUTSettings().nce_idt, CUTSettings().flip_equivariance) == (1.0, True,
                                                                                                   False)
    fast = CUTSettings(mode="fastcut")
    assert (fast.lambda_nce, fast.nce_idt, fast.flip_equivariance) == (10.0, False, True)
    mixed = tiny_config(tmp_path, *TINY, "cut.mode=fastcut", "cut.lambda_nce=5", "cut.nce_idt=true")
    s = mixed.model_settings
    assert (s.lambda_nce, s.nce_idt, s.flip_equivariance) == (5.0, True, True)
    # the run records the resolved values: its config.toml reads back to the same settings, and naming the
    # mode's own value changes nothing, not even the run's name
    assert build_config(tomllib.loads(to_toml(mixed))).families.cut == s
    fastcut = tiny_config(tmp_path, *TINY, "cut.mode=fastcut", "train.run=")
    assert fastcut.run_dir == tiny_config(tmp_path, *TINY, "cut.mode=fastcut", "cut.lambda_nce=10",
                                          "train.run=").run_dir


@pytest.mark.parametrize("override, message", [
    ("cut.mode=fast", "setting cut.mode must be one of: cut, fastcut"),
    *((f"cut.nce_layers={layers}", "setting cut.nce_layers must name layers of the encoder of a generator "
       "with cut.n_blocks=5: input, down1, down2, res1..res5 (or indices 0..14), e.g. \"input, down1, down2, "
       "res1, res5\"") for layers in ("0,4,x", "0,15", "input,res6", "input,down3")),
    ("cut.nce_t=0", "setting cut.nce_t must be > 0"),
    ("cut.num_patches=0", "setting cut.num_patches must be >= 1"),
    ("cut.loss=wgan", "setting cut.loss must be one of: lsgan, bce"),
])
def test_a_wrong_setting_is_one_line_naming_the_key(override, message):
    with pytest.raises(UserError) as err:
        tiny_config(Path("/nonexistent"), *TINY, override)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_cut_and_fastcut_train_and_leave_a_usable_run(config, mode):
    cfg = config(f"cut.mode={mode}")
    assert "cut 4/4 steps" in train.build(cfg, cfg.run_dir)
    rows = read_csv(cfg.run_dir / "losses.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and set(rows[0]) >= {"G_adv", "NCE", "NCE_idt", "D"}
    assert all(torch.isfinite(torch.tensor([float(r[k]) for k in ("G_adv", "NCE", "D")])).all() for r in rows)
    assert (float(rows[0]["NCE_idt"]) > 0) == (mode == "cut")
    assert len(list((cfg.run_dir / "samples").glob("step_*.png"))) == 2
    saved = checkpoint.read(cfg.run_dir / "last.pt")
    assert set(saved["models"]) == {"G", "D", "F"} and saved["architecture"]["nce_layers"] == "0,4,7,10,14"
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt")
    assert loaded.kind == "cut" and loaded.step == 4 and isinstance(loaded.generator, CUTGenerator)
    with torch.no_grad():
        assert loaded.generator(torch.rand(2, 3, 40, 40) * 2 - 1).shape == (2, 3, 40, 40)


def test_a_trained_run_generates_and_zips(config):
    cfg = config("zip.min_images=1", "zip.max_images=20", "generate.count=10")
    train.build(cfg, cfg.run_dir)
    made = sorted(STAGES["generate"].run(cfg).glob("*.jpg"))
    assert len(made) == 10  # every photo
    assert STAGES["zip"].run(cfg).is_file()


@pytest.mark.slow
def test_resumed_training_repeats_the_uninterrupted_losses_and_weights(config, capsys):
    cfg = config("cut.mode=fastcut", "train.epochs=2", "train.checkpoint_every=3", "train.sample_every=100",
                 "train.diffaugment=color,translation", "train.ema=0.9")
    resumed = resume_from_step(cfg, capsys)
    assert set(resumed.resumed) == {"G", "D", "F"}
    assert_same_weights(resumed.uninterrupted, resumed.resumed)


@pytest.mark.slow
def test_other_nce_layers_or_heads_are_refused_on_resume(config):
    STAGES["train"].run(config())
    with pytest.raises(UserError, match=r"mlp_width=32 -> 64.*nce_layers='0,4,7,10,14' -> '0,4,7'.*--force"):
        STAGES["train"].run(config("cut.nce_layers=input,down1,down2", "cut.mlp_width=64"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16-scaler", "bf16"])
def test_a_step_under_autocast_stays_finite_and_trains_every_network(dtype):
    trainer, batch = small_trainer(Runtime(device=torch.device("cpu"), amp_dtype=dtype))
    assert trainer.scaler.is_enabled() == (dtype == torch.float16)
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in trainer.nets.items()}
    trained: set[str] = set()
    # fp16: the grad scaler skips the first steps while it lowers its scale; about ten here, five more than
    # from N(0, 0.02): through the instance norms the authors' small weights get gradients ~30x as large
    for i in range(16):
        assert all(torch.isfinite(v) for v in trainer.train_step(batch, i / 20).values())
        trained |= {n for n, net in trainer.nets.items()
                    if any(not torch.equal(a, b) for a, b in zip(before[n], net.parameters(), strict=True))}
        if trained == set(trainer.nets):
            break
    assert trained == set(trainer.nets)


@pytest.mark.slow
def test_a_killed_run_resumes_through_the_cli_to_the_uninterrupted_weights(tmp_path):
    make_data(tmp_path)
    long = ("train.epochs=4", "train.checkpoint_every=3", "train.sample_every=1000", "train.ema=0.9",
            "train.diffaugment=color,translation")
    run_dir, reference = killed_and_reference(tmp_path, (*TINY, *long), total=16)
    ours, theirs = checkpoint.read(run_dir / "last.pt"), checkpoint.read(reference / "last.pt")
    assert set(ours["models"]) == {"G", "D", "F"}
    assert_same_weights(theirs["models"], ours["models"])
    assert_same_weights(theirs["ema"], ours["ema"])


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync(tmp_path):
    make_data(tmp_path)
    # identity NCE (cut's) and the flip (fastcut's, here given explicitly): each rank flips on its own coin
    options = (*TINY, "train.batch_size=1", "cut.flip_equivariance=true", "train.diffaugment=translation")
    ranks = train_two_ranks(tmp_path, options)
    assert set(ranks[0]) == {"G", "D", "F"}
    for name, weights in ranks[0].items():
        assert all(torch.equal(v, ranks[1][name][k]) for k, v in weights.items()), name
    saved = checkpoint.read(tiny_config(tmp_path, *options).run_dir / "last.pt")
    assert saved["step"] == 4 and len(saved["training"]["ranks"]) == 2  # 8 paintings / (1 x 2 ranks)
