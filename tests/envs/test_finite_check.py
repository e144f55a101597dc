"""FiniteCheck: NaN / inf rewards and observations are caught at the env boundary, on reset and
step, for nested keys; "warn" mode replaces them, marks the step and truncates its episode."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from amago_rl.envs import FiniteCheck, NonFiniteEnvDataError, NonFiniteEnvDataWarning, make_env

sys.path.insert(0, str(Path(__file__).parent))  # nonfinite_envs, importable as make_env names

NAN, INF = float("nan"), float("inf")
KEYS = ["obs", ("extra", "pos"), "reward"]


def step_data(reward: list[float], obs: list[list[float]] | None = None) -> TensorDict:
    """A step's ``next`` data for a batch of len(reward) envs."""
    n = len(reward)
    return TensorDict(
        obs=torch.tensor(obs) if obs is not None else torch.zeros(n, 2),
        extra=TensorDict(pos=torch.zeros(n, 3), batch_size=[n]),
        reward=torch.tensor(reward).unsqueeze(-1),
        truncated=torch.zeros(n, 1, dtype=torch.bool),
        done=torch.zeros(n, 1, dtype=torch.bool),
        batch_size=[n],
    )


def step_input(time_idx: list[int]) -> TensorDict:
    n = len(time_idx)
    return TensorDict(time_idx=torch.tensor(time_idx).unsqueeze(-1), batch_size=[n])


def test_finite_data_passes_untouched() -> None:
    check = FiniteCheck(KEYS, env_name="'task' (Env)")
    nxt = step_data([1.0, 2.0])
    out = check._step(step_input([0, 0]), nxt.clone())
    assert (out == nxt).all()
    assert "nonfinite" not in out.keys(), "error mode adds no entry"
    reset = step_data([0.0, 0.0]).exclude("reward")
    assert (check._reset(TensorDict(batch_size=[2]), reset.clone()) == reset).all()


def test_large_finite_values_whose_sum_overflows_pass() -> None:
    check = FiniteCheck(KEYS, env_name="e")
    nxt = step_data([3e38, 3e38], obs=[[3e38, 3e38], [-3e38, -3e38]])
    assert not torch.isfinite(nxt["reward"].sum())
    check._step(step_input([0, 0]), nxt)


def test_nan_reward_on_step_names_key_env_rows_step_and_fix() -> None:
    check = FiniteCheck(KEYS, env_name="'task' (MyEnv)")
    check._step(step_input([0, 0, 0]), step_data([1.0, 1.0, 1.0]))
    with pytest.raises(NonFiniteEnvDataError) as err:
        check._step(step_input([1, 6, 2]), step_data([1.0, NAN, 1.0]))
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    for part in (
        "'task' (MyEnv)",
        "reward ('next', 'reward')",
        "at env step 2",
        "row 1, episode step 7: nan in 1 of 1 values",
        "env.on_nonfinite=warn",
    ):
        assert part in msg, (part, msg)
    assert "row 0" not in msg and "row 2" not in msg


def test_inf_in_nested_observation_on_step_and_reset() -> None:
    check = FiniteCheck(KEYS, env_name="e")
    nxt = step_data([1.0, 1.0])
    nxt["extra", "pos"][0, 2] = -INF
    with pytest.raises(NonFiniteEnvDataError, match=r"observation \('next', 'extra', 'pos'\)") as e:
        check._step(step_input([0, 0]), nxt)
    assert "row 0, episode step 1: -inf in 1 of 3 values" in str(e.value)

    reset = step_data([0.0, 0.0], obs=[[0.0, 0.0], [INF, NAN]]).exclude("reward")
    with pytest.raises(NonFiniteEnvDataError, match="on reset") as e:
        check._reset(TensorDict(batch_size=[2]), reset)
    assert "observation 'obs'" in str(e.value) and "row 1: inf/nan in 2 of 2 values" in str(e.value)


def test_partial_reset_checks_only_the_rows_being_reset() -> None:
    """On a partial reset the other rows keep their data (EnvBase.reset), whatever the reset
    output holds there."""
    check = FiniteCheck(KEYS, env_name="e")
    reset = step_data([0.0, 0.0], obs=[[NAN, 0.0], [0.0, 0.0]]).exclude("reward")
    reset_rows = TensorDict(_reset=torch.tensor([[False], [True]]), batch_size=[2])
    check._reset(reset_rows, reset.clone())  # row 0 is not reset: no error
    with pytest.raises(NonFiniteEnvDataError, match="row 0"):
        check._reset(TensorDict(_reset=torch.tensor([[True], [False]]), batch_size=[2]), reset)


def test_missing_step_entry_and_bad_option_are_clear_errors() -> None:
    with pytest.raises(KeyError, match="no entry 'velocity'"):
        FiniteCheck(["velocity"], env_name="e")._step(step_input([0]), step_data([1.0]))
    with pytest.raises(ValueError, match=r"one of \('error', 'warn'\).*env.on_nonfinite"):
        FiniteCheck(KEYS, on_nonfinite="skip")


def test_warn_mode_replaces_marks_and_truncates() -> None:
    check = FiniteCheck(KEYS, env_name="e", on_nonfinite="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = check._step(step_input([0, 3]), step_data([1.0, NAN], obs=[[0.0, 1.0], [INF, 2.0]]))
    messages = [str(w.message) for w in caught if w.category is NonFiniteEnvDataWarning]
    assert len(messages) == 2 and "('next', 'obs')" in messages[0]
    assert "row 1, episode step 4: nan" in messages[1] and "replaced by 0" in messages[1]
    assert out["reward"].squeeze(-1).tolist() == [1.0, 0.0]
    assert out["obs"].tolist() == [[0.0, 1.0], [0.0, 2.0]]
    assert out["nonfinite"].squeeze(-1).tolist() == [False, True]
    assert out["truncated"].squeeze(-1).tolist() == [False, True]
    assert out["done"].squeeze(-1).tolist() == [False, True]

    # A bad reset observation is marked in the reset output and its episode truncated at step 1.
    reset = step_data([0.0, 0.0], obs=[[NAN, 0.0], [0.0, 0.0]]).exclude("reward")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonFiniteEnvDataWarning)
        reset = check._reset(TensorDict(batch_size=[2]), reset)
    assert reset["nonfinite"].squeeze(-1).tolist() == [True, False]
    assert torch.isfinite(reset["obs"]).all()
    nxt = check._step(reset.select("nonfinite"), step_data([1.0, 1.0]))
    assert nxt["nonfinite"].squeeze(-1).tolist() == [False, False]
    assert nxt["truncated"].squeeze(-1).tolist() == [True, False]


def test_warn_mode_warns_once_per_key_then_at_a_bounded_rate() -> None:
    def bad_steps(check: FiniteCheck, n: int) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(n):
                check._step(step_input([0]), step_data([NAN]))
                check._step(step_input([0]), step_data([1.0], obs=[[INF, 0.0]]))
        return [str(w.message) for w in caught if w.category is NonFiniteEnvDataWarning]

    once = bad_steps(FiniteCheck(KEYS, on_nonfinite="warn", warn_interval_s=3600), 5)
    assert len(once) == 2, "one warning per key within the interval"
    assert "'reward'" in once[0] and "'obs'" in once[1]
    every = bad_steps(FiniteCheck(KEYS, on_nonfinite="warn", warn_interval_s=0), 3)
    assert len(every) == 6
    assert "1 outputs with a non-finite 'reward' since the last warning, 3 in total" in every[4]


def test_make_env_checks_every_float_entry_on_step() -> None:
    env = make_env("nonfinite_envs:nan_reward_env", num_envs=2)
    check = env.transform[0]
    assert isinstance(check, FiniteCheck)
    assert sorted(map(str, check.in_keys)) == sorted(map(str, KEYS))
    with pytest.raises(NonFiniteEnvDataError) as err:
        env.rollout(10, break_when_any_done=False)
    msg = str(err.value)
    assert "'nonfinite_envs:nan_reward_env' (NonFiniteEnv)" in msg
    assert "('next', 'reward')" in msg and "at env step 3" in msg
    assert "row 0, episode step 3: nan" in msg and "row 1, episode step 3: nan" in msg
    env.close()


def test_make_env_checks_observations_on_reset_and_float64_overflow() -> None:
    env = make_env("nonfinite_envs:inf_obs_env", where="pos", bad_resets=(1,))
    with pytest.raises(NonFiniteEnvDataError, match=r"observation \('extra', 'pos'\) on reset"):
        env.reset()
    env.close()
    env = make_env("nonfinite_envs:inf_obs_env", value=1e300, dtype="float64")
    with pytest.raises(NonFiniteEnvDataError, match=r"\('next', 'obs'\) at env step 4.*inf"):
        env.rollout(10, break_when_any_done=False)
    env.close()


def test_make_env_warn_mode_keeps_data_finite_and_marks_it() -> None:
    check_env_specs(make_env("nonfinite_envs:nan_reward_env", bad_steps=(), on_nonfinite="warn"))
    env = make_env("nonfinite_envs:nan_reward_env", num_envs=2, on_nonfinite="warn", bad_every=4)
    assert "nonfinite" in env.observation_spec.keys()
    with pytest.warns(NonFiniteEnvDataWarning, match="'nonfinite_envs:nan_reward_env'"):
        data = env.rollout(12, break_when_any_done=False)
    marked = data["next", "nonfinite"].squeeze(-1)
    assert marked[0].nonzero().squeeze(-1).tolist() == [2, 3, 7, 11]  # env steps 3, 4, 8, 12
    assert data["next", "truncated"].squeeze(-1)[marked].all()
    for key in ("reward", "prev_reward", "episode_reward"):
        assert torch.isfinite(data["next", key]).all(), key
    env.close()


def test_called_on_data_outside_an_env() -> None:
    data = TensorDict(obs=torch.tensor([[1.0, 2.0], [3.0, NAN]]), batch_size=[2])
    assert FiniteCheck(["obs"])(TensorDict(obs=torch.ones(2, 2), batch_size=[2]))["obs"].sum() == 4
    with pytest.raises(NonFiniteEnvDataError, match="'obs' in the data checked: row 1: nan"):
        FiniteCheck(["obs", "reward"])(data.clone())
    with pytest.warns(NonFiniteEnvDataWarning):
        out = FiniteCheck(["obs"], on_nonfinite="warn")(data)
    assert out["obs"].tolist() == [[1.0, 2.0], [3.0, 0.0]]
    assert out["nonfinite"].squeeze(-1).tolist() == [False, True]
