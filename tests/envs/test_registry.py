"""make_env / register_env / list_envs: names, batching, seeding, errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import gymnasium as gym
import pytest
import torch

from amago_rl.envs import registry
from amago_rl.envs.builtin import TMaze
from amago_rl.envs.registry import list_envs, make_env, register_env

BUILTINS = [
    "alchemy",
    "atari_multigame",
    "babyai",
    "bandit",
    "dark_key_door",
    "half_cheetah_vel",
    "mazerunner",
    "meta_frozen_lake",
    "popgym_multidomain",
    "procgen_multigame",
    "tmaze_active",
    "tmaze_passive",
    "xland",
]


@pytest.fixture
def clean_user_registry() -> Iterator[None]:
    saved = dict(registry._USER)
    yield
    registry._USER.clear()
    registry._USER.update(saved)


def test_list_envs_has_builtins_and_patterns() -> None:
    names = list_envs()
    assert names[: len(BUILTINS)] == BUILTINS
    assert "popgym/<EnvName>" in names and "gymnax/<EnvName>" in names
    assert "metaworld/<ml10|ml45|task-v3>" in names


def test_unknown_name_lists_close_matches_first() -> None:
    with pytest.raises(ValueError) as err:
        make_env("tmaze_pasive")
    message = str(err.value)
    assert "Close matches: ['tmaze_passive'" in message
    assert all(name in message for name in BUILTINS) and "popgym/<EnvName>" in message


def test_kwargs_reach_the_task_and_the_env_is_amago_wrapped() -> None:
    env = make_env("tmaze_passive", seed=0, corridor_length=4)
    steps = env.rollout(50)
    assert steps.batch_size == torch.Size([5])  # episode length H + 1
    assert steps["time_idx"][:, 0].tolist() == [0, 1, 2, 3, 4]
    assert steps["is_init"][:, 0].tolist() == [True, False, False, False, False]
    assert torch.equal(steps["prev_action"][1:], steps["action"][:-1].float())
    env = make_env("CartPole-v1", seed=0, max_episode_steps=7)
    assert env.rollout(50)["next", "truncated"][-1].item()


def test_batched_envs_are_seeded_per_copy_and_reset_per_row() -> None:
    def rollout(seed: int) -> torch.Tensor:
        env = make_env("tmaze_active", num_envs=3, seed=seed, corridor_length=2)
        assert env.batch_size == torch.Size([3])
        torch.manual_seed(0)
        return env.rollout(25, break_when_any_done=False)

    a, b = rollout(0), rollout(0)
    torch.testing.assert_close(a.exclude("episode_reward"), b.exclude("episode_reward"))
    done, init = a["next", "done"][..., 0], a["is_init"][..., 0]
    assert torch.equal(init[:, 1:], done[:, :-1])  # every finished row restarts alone
    assert (a["time_idx"][init] == 0).all()
    key_door = make_env("dark_key_door", num_envs=2, seed=5, size=6)
    tasks = key_door.base_env._env.envs  # SyncVectorEnv copies
    key_door.reset()
    assert not all((tasks[0].key == tasks[1].key) & (tasks[0].goal == tasks[1].goal))


def test_register_env_and_import_path(clean_user_registry: None) -> None:
    register_env("tiny_tmaze", lambda **kw: TMaze(corridor_length=2, **kw))
    assert "tiny_tmaze" in list_envs()
    env = make_env("tiny_tmaze", seed=0, active=True)
    assert env.rollout(20).batch_size == torch.Size([5])  # active: H + 3
    with pytest.raises(ValueError, match="already registered"):
        register_env("tiny_tmaze", TMaze)
    with pytest.raises(ValueError, match="already registered"):
        register_env("bandit", TMaze)
    register_env("tiny_tmaze", lambda: TMaze(corridor_length=3), overwrite=True)
    assert make_env("tiny_tmaze").rollout(20).batch_size == torch.Size([4])
    bandit = make_env("amago_rl.envs.builtin.bandit:MetaBandit", seed=0, horizon=3)
    assert bandit.rollout(10).batch_size == torch.Size([3])
    with pytest.raises(ImportError, match="no_such_module"):
        make_env("no_such_module:factory")
    with pytest.raises(ValueError, match="no callable 'nothing'"):
        make_env("amago_rl.envs.registry:nothing")
    register_env("not_an_env", lambda: object())
    with pytest.raises(TypeError, match="gymnasium Env or a TorchRL EnvBase"):
        make_env("not_an_env")


def test_torchrl_env_factories_batch_with_serial_env(clean_user_registry: None) -> None:
    from torchrl.envs import GymWrapper, SerialEnv

    register_env("torchrl_tmaze", lambda: GymWrapper(TMaze(corridor_length=2)))
    env = make_env("torchrl_tmaze", num_envs=2, seed=0)
    assert isinstance(env.base_env, SerialEnv) and env.batch_size == torch.Size([2])
    done = env.rollout(6, break_when_any_done=False)["next", "done"][..., 0]
    assert done[:, 2].all() and done[:, 5].all() and done.sum() == 4  # episodes of H + 1 = 3


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [
        ("popgym/RepeatPreviousEasy", "popgym", "envs"),
        ("popgym_multidomain", "popgym", "envs"),
        ("half_cheetah_vel", "mujoco", "envs"),
        ("gymnax/MemoryChain-bsuite", "gymnax", "gymnax"),
    ],
)
def test_missing_optional_package_names_the_extra(
    name: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=rf'pip install -e "\.\[{extra}\]"'):
        make_env(name)


def test_popgym_unknown_game_lists_close_matches() -> None:
    pytest.importorskip("popgym")
    with pytest.raises(ValueError, match="Close matches: \\['RepeatPreviousEasy'"):
        make_env("popgym/RepeatPrevEasy")


def test_gymnasium_ids_and_bad_arguments() -> None:
    env = make_env("CartPole-v1", num_envs=2, seed=0)
    assert isinstance(env.base_env._env, gym.vector.SyncVectorEnv)
    assert env.rollout(5).batch_size == torch.Size([2, 5])
    with pytest.raises(ValueError, match="num_envs"):
        make_env("bandit", num_envs=0)


def test_resolve_env_returns_the_unbatched_factory_make_env_uses() -> None:
    from amago_rl.envs import resolve_env
    from amago_rl.envs.builtin.bandit import MetaBandit

    env = resolve_env("bandit")(num_arms=3, horizon=4)
    assert isinstance(env, MetaBandit) and env.num_arms == 3
    with pytest.raises(ValueError, match="unknown env"):
        resolve_env("no_such_env")


class _ImageEnv(gym.Env):
    """A 0-255 (H, W, 3) uint8 Box observation: what TorchRL's GymWrapper guesses is "pixels"."""

    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), dtype="uint8")
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple:
        return self.observation_space.sample(), 1.0, False, False, {}


def test_an_image_observation_has_one_key_whatever_num_envs(clean_user_registry: None) -> None:
    from amago_rl.envs import amago_env

    register_env("image_env", _ImageEnv)
    single, batch = make_env("image_env", num_envs=1), make_env("image_env", num_envs=3)

    def obs_keys(env: object) -> set[str]:
        return {k for k in env.observation_spec.keys() if k in ("pixels", "observation")}

    assert obs_keys(single) == obs_keys(batch) == {"observation"}
    assert single.rollout(2)["observation"].shape == (2, 8, 8, 3)
    assert batch.rollout(2)["observation"].shape == (3, 2, 8, 8, 3)
    assert "observation" in amago_env(_ImageEnv()).observation_spec.keys()
