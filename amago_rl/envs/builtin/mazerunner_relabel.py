"""Hindsight instruction relabeling for MazeRunner (AMAGO's ``HindsightInstructionReplay``).

HER generalised to *sequences* of goals: a stored episode that reached n < k of its goals is
rewritten as if its instruction had been a goal sequence the agent did (partly) complete. Works
on ONE whole episode in the token format of the replay buffer, a TensorDict with batch size
[T + 1] (T actions; token T is the final observation, its action / ``next`` entries are the
buffer's end-of-trajectory filler and are kept as they are):

- observation entries ``goals`` [T + 1, k, 2] and ``achieved`` [T + 1, 1, 2] (``MazeRunner``),
- ``prev_reward`` [T + 1, 1] (reward of the previous action, 0 at token 0),
- ``("next", "reward" | "terminated" | "truncated" | "done")`` [T + 1, 1] for the action of the token.

Steps (AMAGO appendix B, Alg. 1): (1) find the tokens where real goals were reached (reward 1
on the step into them); (2) choose h, the number of goals to add: ``k - n`` ("all") or uniform in
[0, k - n] ("some"); (3) pick h other tokens (never one where a real goal was reached) and take
the cell the agent stood on there as an extra goal; (4) order real + extra goals by time, keep
the remaining original goals after them; (5) replay the episode against this instruction:
rewrite ``goals`` at every token (reached goals -> -1), recompute rewards, ``prev_reward`` and,
if all k goals are now reached, cut the episode at the k-th success and mark it terminated.

Index fixes relative to the reference (which mixes reward indices and observation indices):
candidate tokens are 1..T, excluded are exactly the tokens where a real goal was reached, and the
replay starts at token 1 (token 0 has no incoming action, so it can never pay a reward).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from tensordict import TensorDictBase

from amago_rl.envs.builtin.mazerunner import COMPLETED_GOAL
from amago_rl.errors import missing_key_error

Strategy = Literal["all", "some", "none"]


def hindsight_instruction_relabel(
    traj: TensorDictBase,
    strategy: Strategy,
    rng: np.random.Generator | None = None,
    *,
    goals_key: str = "goals",
    achieved_key: str = "achieved",
    prev_reward_key: str = "prev_reward",
    reward_sum_key: str = "episode_reward",
) -> TensorDictBase:
    """Relabel one stored MazeRunner episode; see the module docstring.

    Args:
        traj: one whole episode, batch size [T + 1]. Not modified.
        strategy: ``"all"`` (every episode becomes a full success when enough tokens exist),
            ``"some"`` (a random number of extra goals, a mix of returns), ``"none"`` (identity).
        rng: numpy generator for the random choices (a fresh one if ``None``).
        goals_key, achieved_key, prev_reward_key: entry names.
        reward_sum_key: running-return entry (TorchRL ``RewardSum``); recomputed when present.

    Returns:
        A new TensorDict, batch size [T' + 1] with T' <= T (``traj`` itself for "none" or when
        nothing is added).
    """
    if strategy not in ("all", "some", "none"):
        raise ValueError(f"strategy must be 'all', 'some' or 'none', got {strategy!r}.")
    if strategy == "none":
        return traj
    for key in (goals_key, achieved_key, prev_reward_key, ("next", "reward")):
        if key not in traj.keys(True):
            raise missing_key_error(key, list(traj.keys(True)), "hindsight_instruction_relabel")
    rng = rng if rng is not None else np.random.default_rng()
    if traj.batch_dims != 1:
        raise ValueError(f"expected one trajectory with batch size [T + 1], got {traj.batch_size}.")
    T = traj.batch_size[0] - 1
    goals = traj[goals_key]  # [T + 1, k, 2]
    achieved = traj[achieved_key].reshape(T + 1, -1)  # [T + 1, 2]
    k = goals.shape[-2]
    rewards = traj["next", "reward"][:T].reshape(T)

    # 1. tokens at which real goals were reached, and which goal each was.
    real_tokens = (torch.nonzero(rewards > 0).flatten() + 1).tolist()[:k]
    real_goals = [goals[t - 1, i] for i, t in enumerate(real_tokens)]
    n = len(real_tokens)
    # 2. how many goals to add.
    h = k - n if strategy == "all" else int(rng.integers(0, k - n + 1))
    candidates = sorted(set(range(1, T + 1)) - set(real_tokens))
    h = min(h, len(candidates))
    if h == 0:
        return traj
    # 3. extra goals: where the agent stood at h random other tokens.
    alt_tokens = rng.choice(candidates, size=h, replace=False).tolist()
    alt_goals = [achieved[t] for t in alt_tokens]
    # 4. goals in the order they were reached; remaining original goals keep their slots.
    ordered = sorted(zip(real_tokens + alt_tokens, real_goals + alt_goals), key=lambda p: p[0])
    instruction = goals[0].clone()
    for i, (_, goal) in enumerate(ordered):
        instruction[i] = goal
    return _replay(traj, instruction, achieved, goals_key, prev_reward_key, reward_sum_key)


def _replay(
    traj: TensorDictBase,
    instruction: torch.Tensor,
    achieved: torch.Tensor,
    goals_key: str,
    prev_reward_key: str,
    reward_sum_key: str,
) -> TensorDictBase:
    """Recompute goals / rewards / terminals of ``traj`` for a new ``instruction`` [k, 2]."""
    T = traj.batch_size[0] - 1
    k = instruction.shape[0]
    new_goals = instruction.expand(T + 1, *instruction.shape).clone()
    new_rewards = torch.zeros(T, dtype=traj["next", "reward"].dtype)
    active, end = 0, T
    for t in range(1, T + 1):
        if torch.equal(achieved[t], instruction[active]):
            new_rewards[t - 1] = 1.0
            active += 1
        new_goals[t, :active] = COMPLETED_GOAL
        if active >= k:
            end = t
            break

    out = traj[: end + 1].clone()
    if end < T:
        # The new final token keeps the buffer's end-of-trajectory filler of the old one.
        last = traj[T]
        next_keys = [("next", *_as_tuple(sub)) for sub in traj["next"].keys(True, True)]
        for key in ["action", *next_keys]:
            if key in out.keys(True):
                out[key][end] = last[key]
    out[goals_key] = new_goals[: end + 1]
    out["next", "reward"][:end] = new_rewards[:end].unsqueeze(-1)
    prev_reward = out[prev_reward_key]
    prev_reward[1:] = new_rewards[:end].unsqueeze(-1).to(prev_reward.dtype)
    if active >= k:
        for flag in ("terminated", "done"):
            if ("next", flag) in out.keys(True):
                out["next", flag][end - 1] = True
    if reward_sum_key in out.keys():
        # RewardSum: root = return before the token's step, next = return including it.
        running = torch.cat([torch.zeros(1), torch.cumsum(new_rewards[:end], 0)])
        out[reward_sum_key] = running.unsqueeze(-1).to(out[reward_sum_key].dtype)
    # Keep next-observation copies (if the buffer stores them) consistent with the root entries.
    for key in (goals_key, prev_reward_key, reward_sum_key):
        if ("next", key) in out.keys(True):
            out["next", key][:end] = out[key][1:]
    return out


def _as_tuple(key: str | tuple[str, ...]) -> tuple[str, ...]:
    return key if isinstance(key, tuple) else (key,)
