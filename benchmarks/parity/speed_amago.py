"""AMAGO's side of the speed harness; run it with the AMAGO venv's python (``speed.py`` does).

    $AMAGO_PYTHON benchmarks/parity/speed_amago.py learner --seq-len 64 --reps 3
    $AMAGO_PYTHON benchmarks/parity/speed_amago.py rollout --envs 8 --reps 200

Builds AMAGO's ``Agent`` through its public API (``FFTstepEncoder`` and ``TformerTrajEncoder`` at
the TARGETS.md default sizes, ``VanillaAttention``: FlashAttention needs a GPU; every other
setting is AMAGO's default), on a 16-dim ``Box`` observation and ``Discrete(4)`` actions.

* ``learner``: one update as ``Experiment.train_step`` makes it without ``accelerate`` (which is
  a pass-through on one CPU process): zero_grad, ``agent(batch)`` (the scalar loss), backward,
  ``clip_grad_norm_`` over all agent parameters at 1.0, ``soft_sync_targets``, AdamW step
  (lr 1e-4, weight decay 1e-3, on ``trainable_params``), warm-up LR-schedule step. Batch: 24
  sequences of ``L`` observation tokens (``L - 1`` actions / rewards / dones), a few terminals.
* ``rollout``: one ``agent.get_actions(obs, rl2s, time_idxs, hidden_state, sample=True)`` call
  under ``no_grad`` in eval mode, as ``Experiment.interact`` makes it, with the Transformer's
  KV-cache hidden state (``max_seq_len`` 512 slots) holding ``POSITION`` tokens (random keys /
  values); ``seq_lens`` is reset to ``POSITION`` before every timed call.

Prints one ``PARITY_RESULT {json}`` line (``speed_spec.report``).
"""

from __future__ import annotations

import time

import gin
import gymnasium as gym
import numpy as np
import speed_spec as spec
import torch


def build_agent(max_seq_len: int):
    from amago.agent import Agent
    from amago.nets.traj_encoders import TformerTrajEncoder
    from amago.nets.transformer import VanillaAttention
    from amago.nets.tstep_encoders import FFTstepEncoder

    tstep = "amago.nets.tstep_encoders.FFTstepEncoder"
    traj = "amago.nets.traj_encoders.TformerTrajEncoder"
    bindings = {
        f"{tstep}.n_layers": spec.TSTEP_LAYERS,
        f"{tstep}.d_hidden": spec.TSTEP_HIDDEN,
        f"{tstep}.d_output": spec.TSTEP_OUT,
        f"{traj}.d_model": spec.D_MODEL,
        f"{traj}.n_heads": spec.N_HEADS,
        f"{traj}.d_ff": spec.D_FF,
        f"{traj}.n_layers": spec.N_LAYERS,
        f"{traj}.attention_type": VanillaAttention,
        "amago.agent.Agent.num_critics": spec.NUM_CRITICS,
        "amago.agent.Agent.tau": spec.TAU,
    }
    for name, value in bindings.items():
        gin.bind_parameter(name, value)
    obs_space = gym.spaces.Dict(
        {"observation": gym.spaces.Box(-np.inf, np.inf, shape=(spec.OBS_DIM,), dtype=np.float32)}
    )
    rl2_space = gym.spaces.Box(-np.inf, np.inf, shape=(1 + spec.NUM_ACTIONS,), dtype=np.float32)
    return Agent(
        obs_space=obs_space,
        rl2_space=rl2_space,
        action_space=gym.spaces.Discrete(spec.NUM_ACTIONS),
        max_seq_len=max_seq_len,
        tstep_encoder_type=FFTstepEncoder,
        traj_encoder_type=TformerTrajEncoder,
    )


def make_batch(seq_len: int):
    from amago.loading import Batch

    b, n_act = spec.BATCH, spec.NUM_ACTIONS
    action = torch.nn.functional.one_hot(torch.randint(n_act, (b, seq_len - 1)), n_act).float()
    reward = torch.randn(b, seq_len - 1, 1)
    prev = torch.cat([torch.zeros(b, 1, 1 + n_act), torch.cat([reward, action], -1)], 1)
    return Batch(
        obs={"observation": torch.randn(b, seq_len, spec.OBS_DIM)},
        rl2s=prev,
        rews=reward,
        dones=torch.rand(b, seq_len - 1, 1) < 0.01,
        actions=action,
        time_idxs=torch.arange(seq_len).expand(b, seq_len).unsqueeze(-1).clone(),
    )


def learner(seq_len: int, reps: int) -> None:
    from amago.utils import get_constant_schedule_with_warmup

    agent = build_agent(seq_len)
    agent.train()
    opt = torch.optim.AdamW(agent.trainable_params, lr=1e-4, weight_decay=1e-3)
    sched = get_constant_schedule_with_warmup(opt, num_warmup_steps=500)
    batch = make_batch(seq_len)
    params = sum(p.numel() for p in agent.trainable_params)

    def update() -> None:
        opt.zero_grad()
        loss = agent(batch, log_step=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.parameters(), spec.GRAD_CLIP)
        agent.soft_sync_targets()
        opt.step()
        sched.step()

    for _ in range(spec.WARMUP["learner"]):
        update()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        update()
        times.append(time.perf_counter() - t0)
    spec.report("amago", "learner", {"seq_len": seq_len}, times, trainable_params=params)


def rollout(envs: int, reps: int) -> None:
    agent = build_agent(spec.CONTEXT)
    agent.eval()
    hidden = agent.traj_encoder.init_hidden_state(envs, torch.device("cpu"))
    hidden.key_cache.data.normal_()
    hidden.val_cache.data.normal_()
    obs = {"observation": torch.randn(envs, 1, spec.OBS_DIM)}
    rl2s = torch.randn(envs, 1, 1 + spec.NUM_ACTIONS)
    time_idxs = torch.full((envs, 1, 1), spec.POSITION, dtype=torch.long)
    times = []
    with torch.no_grad():
        for i in range(spec.WARMUP["rollout"] + reps):
            hidden.seq_lens.fill_(spec.POSITION)  # untimed: every call is the step at POSITION
            t0 = time.perf_counter()
            actions, hidden = agent.get_actions(
                obs=obs, rl2s=rl2s, time_idxs=time_idxs, hidden_state=hidden, sample=True
            )
            if i >= spec.WARMUP["rollout"]:
                times.append(time.perf_counter() - t0)
    assert actions.shape[0] == envs
    config = {"envs": envs, "position": spec.POSITION, "context": spec.CONTEXT}
    spec.report("amago", "rollout", config, times)


if __name__ == "__main__":
    spec.worker_main(__doc__.split("\n")[0], learner, rollout)
