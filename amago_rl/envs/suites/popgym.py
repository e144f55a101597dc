"""POPGym adapters (``popgym`` package, in the ``envs`` extra).

- ``make_popgym_env(name)``: any POPGym env by name (``"RepeatPreviousEasy"`` or its gym id
  ``"popgym-RepeatPreviousEasy-v0"``) as AMAGO prepares it: observations flattened (Tuple obs such
  as Autoencode's become a Box), Discrete / MultiDiscrete observations one-hot, MultiDiscrete
  actions flattened to one Discrete, the step count appended to the observation, and (AMAGO's
  ``truncated_is_done``) the time limit reported as ``terminated``.
- ``MultiDomainPOPGym``: AMAGO-2's one-shot multi-task benchmark over 27 POPGym games, padded to
  one observation and action space; see its docstring.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from amago_rl.errors import require_optional

MULTIDOMAIN_GAMES: tuple[str, ...] = tuple(
    f"{game}{level}"
    for game, levels in (
        ("Autoencode", ("Easy", "Medium", "Hard")),
        ("RepeatPrevious", ("Easy", "Medium", "Hard")),
        ("RepeatFirst", ("Easy", "Medium", "Hard")),
        ("CountRecall", ("Easy", "Medium", "Hard")),
        ("PositionOnlyCartPole", ("Easy", "Medium", "Hard")),
        ("VelocityOnlyCartpole", ("Easy", "Medium", "Hard")),
        ("NoisyPositionOnlyCartPole", ("Easy", "Medium", "Hard")),
        ("MultiarmedBandit", ("Easy", "Medium")),
        ("HigherLower", ("Easy", "Medium", "Hard")),
        ("MineSweeper", ("Easy",)),
    )
    for level in levels
)


def _popgym() -> Any:
    try:
        import popgym
        import popgym.wrappers
    except ImportError as err:
        raise require_optional("popgym", "envs", "POPGym environments") from err
    return popgym


def popgym_names() -> list[str]:
    """Names of every POPGym env of the installed ``popgym`` (``"RepeatPreviousEasy"``, ...)."""
    return [spec["id"].split("-")[1] for spec in _popgym().envs.ALL.values()]


class _OneHotObservation(gym.ObservationWrapper):
    """Discrete(n) -> [n] one-hot; MultiDiscrete([n1..nm]) -> [m * max(n)] stacked one-hots."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        nvec = np.array([space.n]) if isinstance(space, gym.spaces.Discrete) else space.nvec
        self._nvec = np.asarray(nvec).reshape(-1)
        self._width = int(self._nvec.max())
        size = len(self._nvec) * self._width
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        index = np.asarray(observation, dtype=np.int64).reshape(-1)
        out = np.zeros((len(self._nvec), self._width), dtype=np.float32)
        out[np.arange(len(index)), index] = 1.0
        return out.reshape(-1)


def _build_game(name: str) -> gym.Env:
    """The POPGym env ``name`` with flat float observations and a single Discrete / Box action."""
    popgym = _popgym()
    by_name = {spec["id"].split("-")[1]: cls for cls, spec in popgym.envs.ALL.items()}
    if name not in by_name:
        import difflib

        close = difflib.get_close_matches(name, list(by_name), n=5)
        raise ValueError(
            f"Unknown POPGym env {name!r}. Close matches: {close}. All: {sorted(by_name)}."
        )
    env: gym.Env = popgym.wrappers.Flatten(by_name[name]())
    if isinstance(env.action_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete):
        env = popgym.wrappers.DiscreteAction(env)
    if isinstance(env.observation_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete):
        env = _OneHotObservation(env)
    elif env.observation_space.dtype != np.float32:
        env = gym.wrappers.DtypeObservation(env, np.float32)
    return env


class POPGymEnv(gym.Wrapper):
    """One POPGym game as AMAGO runs it; see the module docstring.

    Args:
        name: game name (``"AutoencodeEasy"``) or gym id (``"popgym-AutoencodeEasy-v0"``).
        truncated_is_done: report the game's time limit as ``terminated`` (AMAGO default).
        append_timer: append the raw step count to the observation (AMAGO does).
    """

    def __init__(self, name: str, truncated_is_done: bool = True, append_timer: bool = True):
        if name.startswith("popgym-"):
            name = name.split("-")[1]
        super().__init__(_build_game(name))
        self.game = name
        self.truncated_is_done = truncated_is_done
        self.append_timer = append_timer
        space = self.env.observation_space
        if append_timer:
            low = np.append(space.low, 0.0).astype(np.float32)
            high = np.append(space.high, np.inf).astype(np.float32)
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.timer = 0

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        return np.append(obs, np.float32(self.timer)) if self.append_timer else obs

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.timer = 0
        return self._obs(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.timer += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.truncated_is_done:
            terminated = terminated or truncated
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), info


def make_popgym_env(name: str, **kwargs: Any) -> POPGymEnv:
    """Build ``POPGymEnv(name, **kwargs)`` (raises naming the extra if popgym is missing)."""
    return POPGymEnv(name, **kwargs)


class MultiDomainPOPGym(gym.Env):
    """AMAGO-2's multi-domain POPGym: one random game of ``MULTIDOMAIN_GAMES`` per trial.

    A trial is ``warmup_episodes`` warm-up episodes plus one scored episode of the same game.
    Warm-up rewards are paid as 0 but shown in the observation, so the agent can learn the game
    in-context before it counts. The step after an episode end is a soft reset (its action is
    ignored, reward 0) that shows the first observation of the next episode. The trial
    terminates when the scored episode ends (the reference ends it one reset step later).

    Observation ``[obs_size]`` float32: the game's observation zero-padded, then
    ``[timer / 1000, episode / warmup_episodes, valid_action, revealed_reward]``.
    Actions ``Discrete(num_actions)``; an action the game does not have is replaced by a random
    valid one and flagged with ``valid_action = 0``.

    Args:
        warmup_episodes: unscored episodes before the scored one.
        games: the games to draw from (default: the 27 of AMAGO-2).
        obs_size, num_actions: padded sizes; ``None`` uses the largest of ``games`` (with
            popgym 1.0.7: 30 and 27. AMAGO uses 30 and 26, which cuts CountRecall's last action).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        warmup_episodes: int = 1,
        games: tuple[str, ...] = MULTIDOMAIN_GAMES,
        obs_size: int | None = None,
        num_actions: int | None = None,
    ) -> None:
        super().__init__()
        self.warmup_episodes = warmup_episodes
        self.games = {name: _build_game(name) for name in games}
        for name, env in self.games.items():
            if not isinstance(env.action_space, gym.spaces.Discrete):
                raise ValueError(f"MultiDomainPOPGym: {name} has a non-discrete action space.")
        largest_obs = max(env.observation_space.shape[0] for env in self.games.values()) + 4
        largest_act = max(int(env.action_space.n) for env in self.games.values())
        self.obs_size = obs_size or largest_obs
        self.num_actions = num_actions or largest_act
        if self.obs_size < largest_obs:
            raise ValueError(f"MultiDomainPOPGym: obs_size must be >= {largest_obs}.")
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_size,), np.float32)
        self.action_space = gym.spaces.Discrete(self.num_actions)
        self.current_game = games[0]
        self.timer = self.episode = 0
        self._reset_next_step = False

    @property
    def env_name(self) -> str:
        """Per-task name for metrics: ``MultiDomainPOPGym-<game>``."""
        return f"MultiDomainPOPGym-{self.current_game}"

    def _game_reset(self) -> np.ndarray:
        seed = int(self.np_random.integers(2**31 - 1))
        return self.games[self.current_game].reset(seed=seed)[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        names = list(self.games)
        self.current_game = names[int(self.np_random.integers(len(names)))]
        self.timer = self.episode = 0
        self._reset_next_step = False
        return self._obs(self._game_reset(), True, 0.0), {"game": self.current_game}

    def _obs(self, raw: np.ndarray, valid_action: bool, reward: float) -> np.ndarray:
        obs = np.zeros(self.obs_size, dtype=np.float32)
        raw = np.asarray(raw, dtype=np.float32).reshape(-1)
        obs[: raw.shape[0]] = raw
        obs[-4:] = (
            self.timer / 1000,
            self.episode / max(self.warmup_episodes, 1),
            float(valid_action),
            reward,
        )
        return obs

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        game = self.games[self.current_game]
        self.timer += 1
        action = int(action)
        valid = action < game.action_space.n
        if not valid:
            action = int(self.np_random.integers(game.action_space.n))
        reward, terminated = 0.0, False
        if self._reset_next_step:
            raw = self._game_reset()
            self.episode += 1
            self._reset_next_step = False
        else:
            raw, reward, game_te, game_tr, _ = game.step(action)
            reward = float(reward)
            episode_over = bool(game_te or game_tr)
            terminated = episode_over and self.episode >= self.warmup_episodes
            self._reset_next_step = episode_over
        shown = reward if self.episode >= self.warmup_episodes else 0.0
        info = {"game": self.current_game, "valid_action": valid}
        return self._obs(raw, valid, reward), shown, terminated, False, info
