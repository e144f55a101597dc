"""Data-parallel learning under torchrun (2 gloo processes on 127.0.0.1): the replicas stay
identical and equal a single process updating on the ranks' concatenated batches, every rank
resumes; the CLI writes rank 0's artefacts once and one replay per rank."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from amago_rl import distributed
from amago_rl.checkpoint import load_latest
from amago_rl.cli import load_config
from amago_rl.collectors import make_collector
from amago_rl.trainer import Trainer

WORKER = Path(__file__).with_name("ddp_worker.py")
UPDATES, BATCH = 4, 4  # updates compared; sequences per rank and update
# Deterministic updates (no dropout, one critic so the TD target's ensemble draw is always member
# 0; discrete actions take the exact policy expectation), with InputNorm so its statistics are
# exercised, a constant learning rate, and a small model.
EXACT = [
    "device=cpu",
    "trainer.progress=false",
    f"trainer.batch_size={BATCH}",
    "trainer.warmup_steps=0",
    "trainer.lr=1e-3",
    "agent.num_critics=1",
    "trajectory.kwargs.d_model=32",
    "trajectory.kwargs.d_ff=64",
    "trajectory.kwargs.n_heads=4",
    "+trajectory.kwargs.dropout_ff=0.0",
    "+trajectory.kwargs.dropout_emb=0.0",
    "tstep.kwargs.hidden_dim=32",
    "tstep.kwargs.out_dim=32",
    "tstep.kwargs.normalize_inputs=true",
    "+agent.actor_kwargs.hidden_dim=32",
    "+agent.critic_kwargs.hidden_dim=32",
    "collector.envs_per_worker=2",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node 2`` on a free local port; fails the test on a non-zero exit."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RL_WARNINGS": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def fill_replay(trainer: Trainer, frames: int = 64) -> None:
    collector = make_collector(
        trainer.make_train_env, trainer.rollout_policy, frames_per_batch=frames, seed=0
    )
    trainer.replay.extend(trainer.segmenter.add(next(iter(collector))))
    collector.shutdown()


@pytest.fixture(scope="module")
def exact_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two ranks update on fixed batches (torchrun); a single process updates on their
    concatenations. Batches are full windows (mask all True): both ranks have as many valid
    transitions, so the mean of the rank means is the concatenated batch's mean."""
    tmp = tmp_path_factory.mktemp("ddp_exact")
    ref = Trainer(load_config(EXACT), tmp / "single")
    initial = {k: v.clone() for k, v in ref.agent.loss.state_dict().items()}
    fill_replay(ref)
    batches = []
    for _ in range(UPDATES):
        full = ref.replay.sample(2 * BATCH)
        full.set("mask", torch.ones_like(full.get("mask")))
        batches.append((full[:BATCH].clone(), full[BATCH:].clone()))
    spec = tmp / "spec.pt"
    torch.save(
        {
            "overrides": EXACT,
            "run_dir": str(tmp / "ddp"),
            "out_dir": str(tmp),
            "batches": batches,
        },
        spec,
    )
    torchrun(str(WORKER), str(spec))
    full_batches = iter(torch.cat(pair, 0) for pair in batches)
    ref.replay.sample = lambda: next(full_batches)  # type: ignore[method-assign]
    stats = ref._learn(UPDATES)
    ref.close()
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return {
        "ranks": ranks,
        "initial": initial,
        "single": ref.agent.loss.state_dict(),
        "single_stats": stats,
    }


def test_replicas_stay_identical_across_ranks(exact_run: dict[str, Any]) -> None:
    """Parameters, target networks, PopArt and InputNorm statistics (and every other buffer) are
    bit-identical on both ranks after the updates, although the ranks saw different batches."""
    r0, r1 = exact_run["ranks"]
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["final"].keys() == r1["final"].keys()
    for name in r0["final"]:
        assert torch.equal(r0["final"][name], r1["final"][name]), name
    final, initial = r0["final"], r0["initial"]
    moved = [k for k in final if not torch.equal(final[k], initial[k])]
    for key in ("popart.mu", "popart.nu", "target_critic_params.layers.0.weight"):
        assert key in moved, key
    norms = [k for k in final if k.endswith("in_norm.count")]
    assert norms and all(int(final[k]) == UPDATES for k in norms), norms


def test_data_parallel_update_equals_single_process_on_concatenated_batch(
    exact_run: dict[str, Any],
) -> None:
    r0 = exact_run["ranks"][0]
    for name, value in exact_run["initial"].items():  # same start: rank 0 is built like the single
        assert torch.equal(r0["initial"][name], value), name
    single = exact_run["single"]
    for name, value in r0["final"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, single[name], rtol=1e-5, atol=1e-6, msg=name)
        else:
            assert torch.equal(value, single[name]), name
    ours, theirs = r0["stats"], exact_run["single_stats"]
    for key in ("learn/loss_critic", "learn/loss_actor", "learn/grad_norm"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-4), key


def test_every_rank_resumes_the_checkpoint_with_its_own_sampling_state(
    exact_run: dict[str, Any],
) -> None:
    """Rank 0 saved the checkpoint and rank 1 its RNG state: on resume both load the weights
    and each gets back its own torch and replay-sampling RNG (the ranks' streams differ)."""
    r0, r1 = exact_run["ranks"]
    for rank in (r0, r1):
        assert rank["resumed_updates"] == UPDATES
        for name, value in rank["final"].items():
            assert torch.equal(rank["resumed"][name], value), name
        for saved, resumed in zip(rank["saved_rng"], rank["resumed_rng"], strict=True):
            assert torch.equal(saved, resumed)
    for a, b in zip(r0["saved_rng"], r1["saved_rng"], strict=True):
        assert not torch.equal(a, b), "ranks must draw from different random streams"


def test_torchrun_cli_writes_rank0_artefacts_and_one_replay_per_rank(
    tmp_path: Path, tiny_run: list[str]
) -> None:
    """``torchrun -m amago_rl.cli`` on the quickstart preset for 2 tiny epochs: one config,
    metrics table, logger series and checkpoint series (rank 0), and one replay per rank."""
    run_dir = tmp_path / "run"
    overrides = [*tiny_run, "trainer.epochs=2", "trainer.updates_per_epoch=2", "device=cpu"]
    out = torchrun("-m", "amago_rl.cli", *overrides, f"run_dir={run_dir}")
    assert out.stdout.count("amago-train: finished epoch 2") == 1, out.stdout  # rank 0 reports
    assert (run_dir / "config.yaml").exists() and (run_dir / "learning_curve.png").exists()
    with (run_dir / "metrics.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["epoch"] for r in table] == ["0", "1"]
    # frames of both ranks (2 ranks x 2 envs x 8 steps per epoch); updates are shared steps
    assert [int(r["frames"]) for r in table] == [32, 64]
    assert [int(r["updates"]) for r in table] == [2, 4]
    (series,) = run_dir.glob("logs/*/scalars/frames.csv")
    assert len(series.read_text().split()) == 2, "one logger row per epoch: rank 0 logs alone"
    state = load_latest(run_dir)
    assert state is not None and state["world_size"] == 2 and state["counters"]["epoch"] == 2
    assert sorted(p.name for p in (run_dir / "replay").iterdir()) == ["rank0", "rank1"]
    for r in (0, 1):
        meta = json.loads((run_dir / "replay" / f"rank{r}" / "replay_meta.json").read_text())
        assert meta["tokens_added"] > 0, r
    assert (run_dir / "replay" / "rank1" / distributed.RANK_STATE).exists()
    assert not (run_dir / "replay" / "rank0" / distributed.RANK_STATE).exists()


def test_one_process_helpers_are_no_ops(tmp_path: Path) -> None:
    assert not distributed.is_distributed() and distributed.is_main()
    assert distributed.world_size() == 1 and distributed.process_seed(7) == 7
    assert distributed.replay_dir(tmp_path) == tmp_path / "replay"
    assert distributed.any_rank(True) and not distributed.all_ranks(False)
    assert distributed.mean_over_ranks({"a": 2.0}) == {"a": 2.0}
    assert distributed.sum_over_ranks([1, 2.5]) == [1.0, 2.5]
    loss = torch.nn.Linear(2, 2)
    assert distributed.wrap_loss(loss, torch.device("cpu")) is loss
    distributed.check_world_size({})  # checkpoints before data-parallel runs: one process
    with pytest.raises(ValueError, match="--nproc_per_node 2"):
        distributed.check_world_size({"world_size": 2})


def test_multi_process_launch_needs_a_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="run_dir"):
        distributed.check_run_dir(None)
    distributed.check_run_dir("runs/x")


def _popart_update(module: torch.nn.Module, x: torch.Tensor) -> None:
    module.update_stats(x)  # type: ignore[operator]


def _input_norm_update(module: torch.nn.Module, x: torch.Tensor) -> None:
    module.update(x)  # type: ignore[operator]


@pytest.mark.parametrize("kind", ["popart", "input_norm"])
def test_moment_reducer_applies_the_update_of_the_ranks_union(kind: str) -> None:
    """PopArt and InputNorm with a reducer that adds a second rank's batch moments update exactly
    as one process does on both batches together."""
    from amago_rl.modules.tstep import InputNorm
    from amago_rl.objectives import PopArt

    def make() -> torch.nn.Module:
        return PopArt(3, beta=0.1) if kind == "popart" else InputNorm(3, beta=0.1)

    update = _popart_update if kind == "popart" else _input_norm_update
    mine, theirs = torch.randn(5, 3) * 4 + 1, torch.randn(7, 3) * 2
    union, reduced, other_rank = make(), make(), make()
    update(union, torch.cat([mine, theirs]))
    seen: list[torch.Tensor] = []
    other_rank.moment_reducer = lambda t: seen.append(t) or t  # records the other rank's moments
    update(other_rank, theirs)
    reduced.moment_reducer = lambda t: t + seen[0]
    update(reduced, mine)
    for name, value in union.state_dict().items():
        torch.testing.assert_close(reduced.state_dict()[name], value, msg=name)
