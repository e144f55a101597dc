"""``evaluate_policy``: AMAGO-style evaluation (fresh memory, no exploration, nothing stored).

AMAGO resets its validation envs, steps them for a fixed number of steps from a fresh hidden
state with exploration off but actions sampled (``sample_actions_val=True``), and reports the
return of the episodes completed in that time (AMAGO_REFERENCE.md §6, §9). Here the same runs
in-process on a (batched) TorchRL env with a deep copy of the policy, so the training rollout
policy's memory, exploration state and parameters are never touched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.envs import EnvBase

from amago_rl import keys
from amago_rl.collectors.rollout_policy import eval_policy_copy

#: Per-inner-episode returns of a k-episode trial (``KEpisodeTrial`` + ``trial_info_reader``).
EPISODE_RETURNS = "episode_returns"
#: Per-attempt success (1 / 0, NaN if unfinished) of a k-episode trial (e.g. ``MetaWorldML``).
EPISODE_SUCCESSES = "episode_successes"
#: Per-attempt [N, k] entries -> the name of their ``episode_<i>_<name>`` means.
PER_ATTEMPT = {EPISODE_RETURNS: "return", EPISODE_SUCCESSES: "success"}


def evaluate_policy(
    env: EnvBase,
    policy: TensorDictModuleBase,
    *,
    num_steps: int | None = None,
    num_episodes: int | None = None,
    deterministic: bool = False,
    metric_keys: Sequence[NestedKey] = (),
    episode_reward_key: NestedKey = keys.EPISODE_REWARD,
    keep_returns: bool = False,
) -> dict[str, float | list[float]]:
    """Run a fresh-memory, exploration-free copy of ``policy`` on ``env`` and report returns.

    The env is reset first; rows that finish are reset individually
    (``env.step_and_maybe_reset``) so every env keeps playing until the budget is spent.

    Args:
        env: an env speaking the AMAGO key contract (``amago_env`` / ``make_env``), batch size
            ``[]`` or ``[N]``; it must write ``("next", episode_reward_key)`` (``amago_env``
            does).
        policy: the training rollout policy or the bare actor; a deep copy without exploration
            modules is run (:func:`eval_policy_copy`).
        num_steps: stop after this many policy steps (each steps all ``N`` envs; AMAGO's
            ``val_timesteps_per_epoch`` per actor).
        num_episodes: stop once this many episodes have completed (over all envs; the last
            step may complete a few more). Give ``num_steps``, ``num_episodes`` or both
            (whichever comes first).
        deterministic: take the distribution's mode instead of sampling (AMAGO samples).
        metric_keys: extra per-step entries under ``"next"`` (e.g. from an info reader) averaged
            over completed episodes, read where ``("next", "done")``; reported as
            ``"metric/<key>"``.
        episode_reward_key: the running-return entry under ``"next"``.
        keep_returns: also return every completed episode's return, in completion order
            (``"returns"``, a list), e.g. for success fractions or confidence intervals.

    Returns:
        ``return_mean``, ``return_std`` (population), ``return_min``, ``return_max`` over
        completed episodes (NaN if none), ``episodes``, ``env_steps`` (summed over envs),
        ``steps_per_second`` (env steps / wall time, policy included), per-inner-episode mean
        returns ``episode_<i>_return`` if the env reports ``("next", "episode_returns")``
        ([N, k], k-episode trials), per-attempt success rates ``episode_<i>_success`` if it
        reports ``("next", "episode_successes")`` ([N, k]), the ``metric/<key>`` means, and
        with ``keep_returns`` the list ``returns``.
    """
    if num_steps is None and num_episodes is None:
        raise ValueError("evaluate_policy: give num_steps, num_episodes or both.")
    for name, value in (("num_steps", num_steps), ("num_episodes", num_episodes)):
        if value is not None and value < 1:
            raise ValueError(f"evaluate_policy: {name} must be >= 1, got {value}.")
    evaluator = eval_policy_copy(policy, deterministic=deterministic)
    returns: list[torch.Tensor] = []
    per_attempt: dict[str, list[torch.Tensor]] = {key: [] for key in PER_ATTEMPT}
    metrics: dict[str, list[torch.Tensor]] = {_name(k): [] for k in metric_keys}
    episodes = steps = 0
    start = time.perf_counter()
    td = env.reset()
    while (num_steps is None or steps < num_steps) and (
        num_episodes is None or episodes < num_episodes
    ):
        td = evaluator(td)
        stepped, td = env.step_and_maybe_reset(td)
        steps += 1
        nxt = stepped.get("next")
        done = nxt.get("done").reshape(-1)
        if not done.any():
            continue
        episodes += int(done.sum())
        returns.append(_at_done(nxt, episode_reward_key, done).reshape(-1).float())
        for key, tables in per_attempt.items():
            if key in nxt.keys():
                table = _at_done(nxt, key, done).reshape(int(done.sum()), -1).float()
                tables.append(table)
        for key in metric_keys:
            metrics[_name(key)].append(_at_done(nxt, key, done).reshape(-1).float())
    elapsed = time.perf_counter() - start
    result: dict[str, float | list[float]] = {
        "episodes": float(episodes),
        "env_steps": float(steps * max(env.batch_size.numel(), 1)),
        "steps_per_second": steps * max(env.batch_size.numel(), 1) / max(elapsed, 1e-9),
    }
    all_returns = torch.cat(returns) if returns else torch.zeros(0)
    result.update(_return_stats(all_returns))
    if keep_returns:
        result["returns"] = all_returns.tolist()
    for key, tables in per_attempt.items():
        if tables:
            table = torch.cat(tables)  # [episodes, k], NaN where an attempt never finished
            for i in range(table.shape[-1]):
                result[f"episode_{i}_{PER_ATTEMPT[key]}"] = float(table[:, i].nanmean())
    for name, values in metrics.items():
        result[f"metric/{name}"] = float(torch.cat(values).mean()) if values else math.nan
    return result


def _at_done(nxt: TensorDictBase, key: NestedKey, done: torch.Tensor) -> torch.Tensor:
    value = nxt.get(key, None)
    if value is None:
        raise KeyError(
            f"evaluate_policy: the env wrote no ('next', {key!r}) entry; present: "
            f"{sorted(map(str, nxt.keys(True, True)))}. Episode returns need amago_env's "
            "RewardSum ('episode_reward'); per-step metrics need an info reader."
        )
    return value.reshape(done.shape[0], *value.shape[len(nxt.batch_size) :])[done]


def _return_stats(returns: torch.Tensor) -> dict[str, float]:
    if returns.numel() == 0:
        nan = math.nan
        return {"return_mean": nan, "return_std": nan, "return_min": nan, "return_max": nan}
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std(unbiased=False)),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
    }


def _name(key: NestedKey) -> str:
    return key if isinstance(key, str) else "/".join(key)
