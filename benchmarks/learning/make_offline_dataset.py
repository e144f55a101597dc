"""Write an offline CartPole-v1 dataset (D4RL-style .npz) from a noisy scripted controller.

The controller pushes the cart towards the pole's lean (``theta + 0.5 * theta_dot > 0``) and takes a
uniformly random action with probability ``--noise``; with the defaults (20,000 steps, noise 0.6,
seed 0) the dataset has 217 episodes of return 92 +- 68 (10-451), a "medium" dataset in D4RL's
sense (CartPole's maximum is 500). Used by the offline_to_online_cpu preset::

    python benchmarks/learning/make_offline_dataset.py --out /tmp/cartpole_medium.npz
    amago-train experiment=offline_to_online_cpu replay.offline_dataset=/tmp/cartpole_medium.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

from amago_rl.data import save_d4rl_npz
from amago_rl.envs.registry import make_env


def controller_action(obs: torch.Tensor, rng: np.random.Generator, noise: float) -> int:
    if rng.random() < noise:
        return int(rng.integers(2))
    return int(obs[2] + 0.5 * obs[3] > 0)


def collect(steps: int, noise: float, seed: int) -> TensorDict:
    """TED transitions ``[N <= steps]`` of whole episodes, env-side (integer) actions."""
    env = make_env("CartPole-v1", seed=seed)
    rng = np.random.default_rng(seed)
    td = env.reset()
    rows = []
    for _ in range(steps):
        action = controller_action(td["observation"], rng, noise)
        td["action"] = torch.nn.functional.one_hot(torch.tensor(action), 2)
        stepped, td = env.step_and_maybe_reset(td)
        row = stepped.select("observation", "next").clone()
        row["action"] = torch.tensor(action)
        rows.append(row)
    data = torch.stack(rows, 0)
    done = data["next", "done"].reshape(-1)
    last = int(done.nonzero().max()) + 1  # drop the unfinished episode
    keep = ("observation", "action", *[("next", k) for k in ("observation", "reward")])
    flags = [("next", k) for k in ("terminated", "truncated", "done")]
    return data[:last].select(*keep, *flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = collect(args.steps, args.noise, args.seed)
    path = save_d4rl_npz(data, args.out)
    done = data["next", "done"].reshape(-1)
    ends = done.nonzero().reshape(-1)
    lengths = torch.diff(torch.cat([torch.tensor([-1]), ends])).float()
    print(
        f"{path}: {data.shape[0]} transitions, {ends.numel()} episodes, return "
        f"{lengths.mean():.1f} +- {lengths.std():.1f} (min {lengths.min():.0f}, max "
        f"{lengths.max():.0f})"
    )


if __name__ == "__main__":
    main()
