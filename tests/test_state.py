"""What a run keeps between sessions (training/state.py) and how the loop shares one plan among them: one
learning-rate schedule planned by the first session, each session training its share of it and each later
one resuming where the last stopped (sessions.json says where the run stands); and over several machines,
every rank resuming rank 0's checkpoint."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, TINY, free_port, losses, make_data, tiny_config, train_two_ranks

from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.clock import StepClock
from pipeline.training.families.cyclegan.step import CycleGANTrainer
from pipeline.training.plan import Plan
from pipeline.training.state import read_sessions


@pytest.fixture
def no_networks(monkeypatch):
    """Steps that train nothing: the plan and the sessions are under test here, not the networks."""
    monkeypatch.setattr(CycleGANTrainer, "train_step",
                        lambda self, batch, progress: {"loss": torch.tensor(1.0)})


def test_three_sessions_share_one_plan_each_resumes_the_last_and_the_third_ends_decayed(tmp_path, step_clock,
                                                                                      capsys, no_networks):
    make_data(tmp_path)
    cfg = tiny_config(tmp_path, *TINY, "train.epochs=1000", "train.time_budget_min=0.25", "train.sessions=3",
                      "train.log_every=10", "train.sample_every=1000", "train.checkpoint_every=1000")
    train.build(cfg, cfg.run_dir, clock=step_clock)
    out = capsys.readouterr().out
    # 15 s a session at 10 steps/s: the first plans for its 13 s left and two more sessions of 15
    assert "over 3 sessions; decay from step" in out and "(measured 10.00 steps/s at step 20)" in out
    plan = Plan.from_dict(checkpoint.read(cfg.run_dir / "last.pt")["plan"])
    [first] = read_sessions(cfg.run_dir)
    assert first["to_step"] == checkpoint.read(cfg.run_dir / "last.pt")["step"] < plan.total / 2
    assert first["line"].startswith(f"session 1 of 3: steps 0 → {first['to_step']:,} of {plan.total:,}; lr ")
    assert first["line"] in out
    for session in (2, 3):
        train.build(cfg, cfg.run_dir, clock=step_clock)
        out = capsys.readouterr().out
        start = read_sessions(cfg.run_dir)[-2]["to_step"]
        assert f"resuming from step {start:,} (session {session} of 3), checkpoint" in out
    records = read_sessions(cfg.run_dir)
    assert [r["session"] for r in records] == [1, 2, 3]
    assert [r["from_step"] for r in records[1:]] == [r["to_step"] for r in records[:-1]]
    rows = losses(cfg)
    total = Plan.from_dict(checkpoint.read(cfg.run_dir / "last.pt")["plan"]).total
    assert records[-1]["to_step"] == total == rows[-1]["step"] and not records[-1]["stopped"]
    assert rows[-1]["lr"] <= 0.05 * rows[0]["lr"]  # one schedule, decayed by the end of the last session


@pytest.fixture
def rate(monkeypatch):
    """The loop's clock, 0.1 s a step unless a test sets its `seconds(n)` for the run's n-th step (counted
    over its sessions), and a CycleGAN step that does nothing else (the plan is under test, not the
    networks)."""
    monkeypatch.setattr(CycleGANTrainer, "train_step",
                        lambda self, batch, progress: {"loss": torch.tensor(1.0)})
    return StepClock(0.1)


BUDGETED = (*TINY, "train.epochs=1000", "train.time_budget_min=0.5", "train.log_every=10",
            "train.sample_every=1000", "train.checkpoint_every=1000")


def test_a_session_ends_at_its_share_when_the_rate_drops_and_recovers_and_the_next_trains_the_rest(
        tmp_path, rate):
    make_data(tmp_path)
    rate.seconds = lambda n: 1.0 if 20 <= n < 30 else 0.1  # a load after the warm-up: 10 steps at a tenth
    cfg = tiny_config(tmp_path, *BUDGETED, "train.sessions=2")
    summary = train.build(cfg, cfg.run_dir, clock=rate)
    [first] = read_sessions(cfg.run_dir)
    plan = Plan.from_dict(checkpoint.read(cfg.run_dir / "last.pt")["plan"])
    assert first["to_step"] == checkpoint.read(cfg.run_dir / "last.pt")["step"] == -(-plan.total // 2)
    assert first["seconds"] < 30 and first["stopped"] in summary  # before its 30 s were spent, and says so
    share = f"session 1 of 2 ended at its share of the plan, step {first['to_step']} of {plan.total}, with "
    assert first["stopped"].startswith(share)
    train.build(cfg, cfg.run_dir, clock=rate)
    second = read_sessions(cfg.run_dir)[1]
    total = Plan.from_dict(checkpoint.read(cfg.run_dir / "last.pt")["plan"]).total
    assert second["from_step"] == first["to_step"] and second["to_step"] == total and not second["stopped"]
    assert total > plan.total  # re-fitted to the recovered rate, although its decay had begun
    rows = losses(cfg)
    assert rows[-1]["step"] == total and rows[-1]["lr"] <= 0.05 * rows[0]["lr"]  # one schedule, decayed


@pytest.mark.parametrize("sessions", [2, 3])
def test_a_run_squeezed_into_its_decay_by_a_slow_start_trains_on_in_every_later_session(tmp_path, rate,
                                                                                         sessions):
    """The review's chain: a slow spell right after the warm-up shrank the run into its decay (35 steps over 2
    sessions); session 1 trained them all, and session 2 found nothing left to train. Here the spell shrinks
    the plan to 21 steps over 2 sessions, 24 over 3 (where session 2 too starts past its share)."""
    make_data(tmp_path)
    rate.seconds = lambda n: 2.5 if 11 <= n < 21 else 0.1
    cfg = tiny_config(tmp_path, *BUDGETED, f"train.sessions={sessions}")
    for _ in range(sessions):
        train.build(cfg, cfg.run_dir, clock=rate)
    records = read_sessions(cfg.run_dir)
    first = records[0]  # the plan shrank under it: past its share already, it ends there
    assert first["to_step"] < first["total"] and "ended at its share of the plan" in first["stopped"]
    assert [r["from_step"] for r in records[1:]] == [r["to_step"] for r in records[:-1]]
    assert all(r["to_step"] > r["from_step"] for r in records)  # none finds nothing to train
    assert records[-1]["to_step"] == records[-1]["total"] > 5 * first["total"]  # the recovered rate's
    rows = losses(cfg)
    assert rows[-1]["step"] == records[-1]["total"] and rows[-1]["lr"] <= 0.05 * rows[0]["lr"]


def test_a_session_run_again_from_the_previous_output_replaces_its_record(tmp_path, step_clock, capsys,
                                                                         no_networks):
    make_data(tmp_path)
    cfg = tiny_config(tmp_path, *TINY, "train.epochs=1000", "train.time_budget_min=0.1", "train.sessions=2",
                      "train.log_every=5", "train.sample_every=1000", "train.checkpoint_every=1000")
    train.build(cfg, cfg.run_dir, clock=step_clock)
    after_first = {p.name: p.read_bytes() for p in cfg.run_dir.iterdir() if p.is_file()}
    train.build(cfg, cfg.run_dir, clock=step_clock)
    assert [r["session"] for r in read_sessions(cfg.run_dir)] == [1, 2]
    for name, data in after_first.items():  # as a failed session 2 is pushed again on session 1's output
        (cfg.run_dir / name).write_bytes(data)
    for extra in set(p.name for p in cfg.run_dir.glob("ckpt_*.pt")) - set(after_first):
        (cfg.run_dir / extra).unlink()
    capsys.readouterr()
    train.build(cfg, cfg.run_dir, clock=step_clock)
    assert "(session 2 of 2)" in capsys.readouterr().out
    assert [r["session"] for r in read_sessions(cfg.run_dir)] == [1, 2]


NODE = '''
import os, sys, torch
sys.path.insert(0, {tests!r})
import pipeline
from helpers import TINY, tiny_config
from pipeline.stages import STAGES
from pipeline.training.family import get_family

data = sys.argv[1]
cfg = tiny_config(__import__("pathlib").Path(data).parent, *TINY, *sys.argv[2:])
family = get_family(cfg.train.model)
built = []

class Recorded(family.trainer_class()):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        built.append(self)

family.trainer_class = lambda: Recorded
torch.set_num_threads(1)
STAGES["train"].run(cfg)
torch.save({{n: net.state_dict() for n, net in built[0].nets.items()}},
           os.path.join({out!r}, f"rank{{os.environ['RANK']}}.pt"))
'''


def two_nodes(tmp_path: Path, *sets: str) -> list[dict]:
    """`make train NODES=2 NODE_RANK=i RDZV=127.0.0.1:PORT`, one gloo process a node, each node with its own
    copy of the data (node 1 never sees node 0's run folder); each rank's final weights."""
    script = tmp_path / "node.py"
    script.write_text(NODE.format(tests=str(REPO / "tests"), out=str(tmp_path)))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=test"]
    data = [tmp_path / f"node{i}" / "data" for i in range(2)]
    nodes = [subprocess.Popen([*torchrun, f"--node-rank={i}", str(script), str(data[i]), *sets], cwd=tmp_path,
                              env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for i in range(2)]
    for node in nodes:
        output = node.communicate(timeout=300)[0]
        assert node.returncode == 0, output[-3000:]
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


@pytest.mark.slow
def test_two_nodes_resume_from_rank_0s_checkpoint_and_train_to_the_same_weights(tmp_path):
    """Node 0 holds a run of 4 steps (trained by two ranks on node 0 alone); two nodes, each with its own copy
    of the data, train it on to 8: node 1 has no checkpoint, so rank 0 sends it its own, and rank 0 alone
    writes the run folder."""
    for i in range(2):
        make_data(tmp_path / f"node{i}")
    train_two_ranks(tmp_path / "node0", (*TINY, "train.batch_size=1", "train.epochs=1"))
    run = tiny_config(tmp_path / "node0", *TINY, "train.batch_size=1", "train.epochs=1").run_dir
    assert checkpoint.read(run / "last.pt")["step"] == 4  # 8 paintings / (batch 1 x 2 ranks)
    ranks = two_nodes(tmp_path, "train.batch_size=1", "train.epochs=2")
    for name, weights in ranks[0].items():
        assert all(torch.equal(v, ranks[1][name][k]) for k, v in weights.items()), name
    assert checkpoint.read(run / "last.pt")["step"] == 8
    assert not (tmp_path / "node1" / "data" / "runs").exists()
