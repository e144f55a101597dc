"""amago_rl/specs.py: the one action-spec classifier (and its agent-side check) and the one
definition of which entries are observations."""

from __future__ import annotations

import pytest
import torch
from torchrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
)

from amago_rl import keys
from amago_rl.envs import make_env
from amago_rl.experiment import stored_obs_keys
from amago_rl.modules import make_amago_modules
from amago_rl.specs import (
    ActionFormat,
    ActionKind,
    agent_action_kind,
    classify_action_spec,
    observation_keys,
)

D, C, M = ActionKind.DISCRETE, ActionKind.CONTINUOUS, ActionKind.MULTIBINARY


@pytest.mark.parametrize(
    ("spec", "batch_dims", "expected"),
    [
        (OneHot(5), 0, ActionFormat(D, 5)),
        (Categorical(5), 0, ActionFormat(D, 5, integer=True)),
        (Binary(3), 0, ActionFormat(M, 3)),
        (Bounded(-2.0, 3.0, shape=(4,)), 0, ActionFormat(C, 4)),
        (Unbounded(shape=(2,)), 0, ActionFormat(C, 2)),
        (Composite(action=OneHot(7)), 0, ActionFormat(D, 7)),
        # batched specs: explicit or inferred batch dims
        (OneHot(5, shape=(8, 5)), 1, ActionFormat(D, 5)),
        (OneHot(5, shape=(8, 5)), None, ActionFormat(D, 5)),
        (Categorical(6, shape=(8,)), None, ActionFormat(D, 6, integer=True)),
        (Binary(3, shape=(2, 4, 3)), None, ActionFormat(M, 3)),
    ],
)
def test_classify_action_spec(spec, batch_dims, expected: ActionFormat) -> None:
    assert classify_action_spec(spec, batch_dims=batch_dims) == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (MultiOneHot([2, 3]), "multi-discrete"),
        (MultiCategorical([2, 3]), "multi-discrete"),
        (Categorical(4, shape=(2,)), "single integer per env"),
        (Bounded(-1.0, 1.0, shape=(2, 3)), "flat action vector"),
        (Bounded(-1, 1, shape=(2,), dtype=torch.int64), "unsupported spec Bounded"),
    ],
)
def test_classify_refuses_unsupported_specs(spec, match: str) -> None:
    with pytest.raises(TypeError, match=match) as info:
        classify_action_spec(spec)
    assert "Supported action specs" in str(info.value)


def test_classify_names_the_missing_composite_entry() -> None:
    with pytest.raises(KeyError, match=r"no entry 'action'.*'act'"):
        classify_action_spec(Composite(act=OneHot(5)))


def test_action_kind_is_a_string_enum() -> None:
    assert ActionKind("discrete") is D and D == "discrete" and f"{C}" == "continuous"
    assert {"multibinary": 1}[M] == 1  # hashes like its name, so string-keyed tables work


def test_agent_action_kind() -> None:
    assert agent_action_kind(OneHot(5)) == (D, 5)
    assert agent_action_kind(Composite(action=Binary(3))) == (M, 3)
    assert agent_action_kind(Bounded(-1.0, 1.0, shape=(8, 3))) == (C, 3)  # batch dims ignored
    with pytest.raises(TypeError, match=r"integer spec.*OneHotActions"):
        agent_action_kind(Categorical(4))
    with pytest.raises(TypeError, match="ActionRescale"):
        agent_action_kind(Bounded(0.0, 2.0, shape=(2,)))
    with pytest.raises(TypeError, match="unbounded"):
        agent_action_kind(Unbounded(shape=(2,)))


# ------------------------------------------------------------------------------- observations


def test_observation_keys_skip_bookkeeping_entries_at_any_depth() -> None:
    spec = Composite(
        observation=Unbounded((3,)),
        goals=Unbounded((2,)),
        prev_action=Unbounded((2,)),
        prev_reward=Unbounded((1,)),
        time_idx=Unbounded((1,), dtype=torch.int64),
        is_init=Unbounded((1,), dtype=torch.bool),
        episode_reward=Unbounded((1,)),
        step_count=Unbounded((1,), dtype=torch.int64),
        episode_successes=Unbounded((3,)),  # trial info readers (Meta-World, BabyAI, XLand)
        episode_returns=Unbounded((3,)),
        task_index=Unbounded((), dtype=torch.int64),
        inner_episode_return=Unbounded(()),
        nested=Composite(pos=Unbounded((2,)), done=Unbounded((1,), dtype=torch.bool)),
    )
    assert observation_keys(spec) == ["goals", ("nested", "pos"), "observation"]
    assert observation_keys(spec, exclude=["goals"]) == [("nested", "pos"), "observation"]


@pytest.mark.parametrize("name", ["tmaze_passive", "bandit", "mazerunner", "dark_key_door"])
def test_replay_stores_the_observations_the_policy_reads(name: str) -> None:
    """Replay and the timestep encoder share one answer to "which entries are observations"
    (they used to differ: replay also stored amago_env's running return, episode_reward)."""
    env = make_env(name, num_envs=2, seed=0)
    modules = make_amago_modules(env.observation_spec, env.action_spec, trajectory="ff")
    read = set(modules.tstep_encoder.in_keys) - {keys.PREV_ACTION, keys.PREV_REWARD}
    assert set(stored_obs_keys(env)) == read
    # an entry the config tells the encoder to read is stored too, observation or not
    assert stored_obs_keys(env, ["episode_reward"])[-1] == "episode_reward"
    env.close()
