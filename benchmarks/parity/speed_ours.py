"""amago_rl's side of the speed harness: one measurement in a fresh process, one thread.

    python benchmarks/parity/speed_ours.py learner --seq-len 64 --reps 3
    python benchmarks/parity/speed_ours.py rollout --envs 8 --reps 200

* ``learner``: one full gradient update of the default agent, built and run exactly as
  ``benchmarks/learner_update.py`` does (``AMAGOLoss`` forward + backward, grad-norm clip 1.0,
  fused AdamW step, LR-schedule step, ``SoftUpdate``), batch 24 windows of ``L`` tokens.
* ``rollout``: one full policy step as the collector runs it:
  ``make_rollout_policy(make_amago_modules(...).policy)`` called on a ``TensorDict`` of ``envs``
  rows (timestep encoder, Transformer step with the KV cache, actor head, sampled action). The
  cache holds ``POSITION`` tokens (random keys / values: the cost does not depend on them); its
  counters are reset to ``POSITION`` before every timed call.

Prints one ``PARITY_RESULT {json}`` line (``speed_spec.report``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import speed_spec as spec
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: learner_update.py


def learner(seq_len: int, reps: int) -> None:
    import learner_update as lu

    loss, updater, opt, sched = lu.build(spec.D_MODEL, seq_len)
    td = lu.make_batch(seq_len)
    params = sum(p.numel() for p in loss.parameters())
    for _ in range(spec.WARMUP["learner"]):
        lu.update(loss, updater, opt, sched, td)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        lu.update(loss, updater, opt, sched, td)
        times.append(time.perf_counter() - t0)
    spec.report("ours", "learner", {"seq_len": seq_len}, times, trainable_params=params)


def rollout(envs: int, reps: int) -> None:
    from tensordict import TensorDict
    from torchrl.data import Categorical, Composite, OneHot, Unbounded

    from amago_rl.collectors import make_rollout_policy
    from amago_rl.modules import make_amago_modules

    obs_spec = Composite(
        observation=Unbounded(shape=(spec.OBS_DIM,)),
        prev_action=Unbounded(shape=(spec.NUM_ACTIONS,)),
        prev_reward=Unbounded(shape=(1,)),
        time_idx=Unbounded(shape=(1,), dtype=torch.int64),
        is_init=Categorical(2, shape=(1,), dtype=torch.bool),
    )
    modules = make_amago_modules(
        obs_spec,
        OneHot(spec.NUM_ACTIONS),
        tstep_kwargs={
            "hidden_dim": spec.TSTEP_HIDDEN,
            "n_layers": spec.TSTEP_LAYERS,
            "out_dim": spec.TSTEP_OUT,
        },
        trajectory="transformer",
        trajectory_kwargs={
            "d_model": spec.D_MODEL,
            "n_heads": spec.N_HEADS,
            "d_ff": spec.D_FF,
            "n_layers": spec.N_LAYERS,
        },
        max_seq_len=spec.CONTEXT,
        num_critics=spec.NUM_CRITICS,
    )
    policy = make_rollout_policy(modules.policy)
    action = torch.nn.functional.one_hot(torch.randint(spec.NUM_ACTIONS, (envs,)), spec.NUM_ACTIONS)
    td = TensorDict(
        {
            "observation": torch.randn(envs, spec.OBS_DIM),
            "prev_action": action.float(),
            "prev_reward": torch.randn(envs, 1),
            "time_idx": torch.full((envs, 1), spec.POSITION),
            "is_init": torch.zeros(envs, 1, dtype=torch.bool),
        },
        batch_size=[envs],
    )
    policy(td)  # allocates the KV cache
    memory = modules.traj_encoder._memory
    memory["kv"].normal_()
    times = []
    for i in range(spec.WARMUP["rollout"] + reps):
        memory["count"].fill_(spec.POSITION)  # untimed: every call is the step at POSITION
        t0 = time.perf_counter()
        policy(td)
        if i >= spec.WARMUP["rollout"]:
            times.append(time.perf_counter() - t0)
    assert td["action"].shape == (envs, spec.NUM_ACTIONS)
    config = {"envs": envs, "position": spec.POSITION, "context": spec.CONTEXT}
    spec.report("ours", "rollout", config, times)


if __name__ == "__main__":
    spec.worker_main(__doc__.split("\n")[0], learner, rollout)
