"""gymnax adapter: import errors name the missing module, batched auto-reset, seeding after a
reset (as collectors do), the builder policy collecting from it, and ``amago-train`` on the
``gymnax_cpu`` preset.

Skipped without the ``gymnax`` extra, except under CI (``CI=true``), where ``make test`` installs
it: there a missing package fails these tests instead of hiding them.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from amago_rl.collectors import make_collector, make_rollout_policy
from amago_rl.envs.registry import make_env
from amago_rl.modules import make_amago_modules
from amago_rl.modules.exploration import EpsilonGreedy

pytestmark = pytest.mark.needs_extra("gymnax", "gymnax", "jax")
ENV = "gymnax/MemoryChain-bsuite"
EPISODE = 6  # MemoryChain-bsuite (memory_length 5) ends after 6 steps


def test_import_error_names_the_module_gymnax_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from amago_rl.envs.suites.gymnax import _import_jax

    for name in [m for m in sys.modules if m.split(".")[0] in ("gymnax", "six")]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    monkeypatch.setitem(sys.modules, "six", None)  # as if six (imported by gymnax) were missing
    try:
        with pytest.raises(ImportError) as err:
            _import_jax()
    finally:  # drop the half-imported gymnax modules before monkeypatch restores the real ones
        for name in [m for m in sys.modules if m == "gymnax" or m.startswith("gymnax.")]:
            del sys.modules[name]
    message = str(err.value)
    assert "optional package 'six'" in message and 'pip install -e ".[gymnax]"' in message
    assert "import gymnax" in message and "'jax'" not in message


def test_batched_env_spec_and_autoreset() -> None:
    env = make_env(ENV, num_envs=4, seed=0)
    assert env.batch_size == torch.Size([4])
    check_env_specs(env)
    torch.manual_seed(0)
    steps = make_env(ENV, num_envs=4, seed=0).rollout(40, break_when_any_done=False)
    done, init = steps["next", "done"][..., 0], steps["is_init"][..., 0]
    assert done.sum() >= 16 and (done.sum(1) == 40 // EPISODE).all()
    assert torch.equal(init[:, 1:], done[:, :-1])  # the step after every done starts a trajectory
    assert (steps["time_idx"][init] == 0).all() and init[:, 0].all()
    # MemoryChain shows time-remaining 1 and the +-1 context only on the reset observation:
    first = steps["observation"][init]
    assert (first[:, 0] == 1).all() and (first[:, 2].abs() == 1).all()
    assert (steps["next", "observation"][done][:, 0] < 1).all()  # true last obs, not the reset one
    torch.manual_seed(0)
    again = make_env(ENV, num_envs=4, seed=0).rollout(40, break_when_any_done=False)
    assert torch.equal(again["observation"], steps["observation"])
    assert not torch.equal(
        env.rollout(40, break_when_any_done=False)["observation"], again["observation"]
    )
    with pytest.raises(ValueError, match="MemoryChain-bsuite"):
        make_env("gymnax/MemoryChain")


def test_set_seed_after_reset_keeps_stepping_and_reseeds_the_next_reset() -> None:
    from amago_rl.envs.suites.gymnax import GymnaxEnv

    with pytest.raises(RuntimeError, match=r"before the first reset\(\)"):
        GymnaxEnv("MemoryChain-bsuite", 2).rand_step()
    # What a TorchRL collector does: reset when built, set_seed, then step without a new reset.
    env = make_env(ENV, num_envs=16, seed=0)
    td = env.reset()
    env.set_seed(1)
    steps = env.rollout(8, auto_reset=False, tensordict=td, break_when_any_done=False)
    assert steps["next", "done"][:, EPISODE - 1].all()  # the episodes begun before set_seed end
    # After set_seed, a reset draws every row from the new key, whatever happened before.
    used = make_env(ENV, num_envs=16, seed=0)
    used.rollout(9, break_when_any_done=False)  # some rows mid-episode, some just auto-reset
    fresh = make_env(ENV, num_envs=16, seed=3)
    for e in (used, fresh):
        e.set_seed(5)
    context = [e.reset()["observation"][:, 2] for e in (used, fresh)]
    assert torch.equal(context[0], context[1])
    fresh.set_seed(6)
    assert not torch.equal(fresh.reset()["observation"][:, 2], context[0])


def test_builder_policy_collects_through_make_collector() -> None:
    def env_fn() -> object:
        return make_env(ENV, num_envs=3, seed=0)

    env = env_fn()
    modules = make_amago_modules(
        env.observation_spec,
        env.action_spec,
        tstep_kwargs={"out_dim": 16, "hidden_dim": 16, "n_layers": 1},
        trajectory_kwargs={"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
        max_seq_len=16,
        gammas=(0.9, 0.99),
    )
    policy = make_rollout_policy(modules.policy, EpsilonGreedy(env.action_spec))
    collector = make_collector(env_fn, policy, frames_per_batch=3 * 12, total_frames=3 * 24, seed=0)
    try:
        batches = list(collector)
    finally:
        collector.shutdown()
    assert [b.batch_size for b in batches] == [torch.Size([3, 12])] * 2
    steps = torch.cat(batches, dim=1)
    action = steps["action"]
    assert action.shape == (3, 24, 2) and bool((action.sum(-1) == 1).all())  # one-hot of 2
    done, init = steps["next", "done"][..., 0], steps["is_init"][..., 0]
    assert (done.sum(1) == 24 // EPISODE).all()
    assert torch.equal(init[:, 1:], done[:, :-1]) and init[:, 0].all()
    reward = steps["next", "reward"][..., 0]
    assert set(reward[done].tolist()) <= {-1.0, 1.0} and (reward[~done] == 0).all()


def test_amago_train_runs_the_gymnax_cpu_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The body of ``amago-train`` on the composed preset, in-process: a subprocess would add
    ~25 s of imports (torch, jax, gymnax) on a 2-core machine for no extra coverage."""
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from amago_rl.cli import _run

    run_dir = tmp_path / "run"
    overrides = [
        "experiment=gymnax_cpu",
        "trainer.epochs=1",
        "trainer.timesteps_per_epoch=16",
        "trainer.updates_per_epoch=2",
        "trainer.batch_size=4",
        "trainer.eval_timesteps=12",
        "trainer.progress=false",
        "collector.envs_per_worker=4",
        "replay.save_every=8",
        f"run_dir={run_dir}",
    ]
    with initialize_config_module("amago_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # as @hydra.main does before calling the task
    with open_dict(cfg):
        del cfg["hydra"]
    _run.__wrapped__(cfg)  # the function under @hydra.main
    out = capsys.readouterr().out
    assert "amago-train: finished epoch 1 (64 frames, 2 updates" in out, out
    with (run_dir / "metrics.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["updates"] == "2" and row["frames"] == "64"
    assert -1.0 <= float(row["train/return"]) <= 1.0  # MemoryChain returns are +-1
