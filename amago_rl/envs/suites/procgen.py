"""Procgen adapter (``procgen-mirror`` package, a Python 3.11 build of procgen 0.10.7, in the
``procgen`` extra).

Procgen's native interface is gym3 (``procgen.ProcgenGym3Env``, auto-resetting batches); it is
driven here with one env per instance, so neither the old ``gym`` API nor gym3's vector logic
reaches TorchRL. (``import procgen`` also imports the old ``gym`` package, which the extra
installs beside gymnasium; it is not used.)

- ``ProcgenGame("coinrun")`` (``make_env("procgen/coinrun")``): one game, observation
  ``[64, 64, 3]`` uint8 RGB, ``Discrete(15)`` actions (every game shares procgen's 15 combos).
  An episode ends with ``terminated`` when procgen ends it; procgen does not tell its own step
  limit apart from a game end, so that too counts as a terminal (as in AMAGO).
- ``ProcgenMultiGame(games)`` (``make_env("procgen_multigame")``): AMAGO example 09's
  two-attempt multi-task Procgen. Each trial draws a game and a level (``level_range``, so train
  and test levels can be split); the agent plays that level twice in a row. The second attempt
  starts on the step after the first ends (reward 0 there is not added: it is the first frame of
  attempt two) and is marked by a 4 x 4 black box in the top-left corner of the frame, so the
  attempt is visible without an extra input. The trial ends (``terminated``) with the second
  attempt. ``info["game_id"]`` and the ``game_id`` attribute name the game.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from amago_rl.envs.attempts import AttemptLedger
from amago_rl.errors import require_optional

ALL_GAMES: tuple[str, ...] = (
    "bigfish",
    "bossfight",
    "caveflyer",
    "chaser",
    "climber",
    "coinrun",
    "dodgeball",
    "fruitbot",
    "heist",
    "jumper",
    "leaper",
    "maze",
    "miner",
    "ninja",
    "plunder",
    "starpilot",
)
#: Example 09's "easy" games.
EASY_GAMES: tuple[str, ...] = ("climber", "coinrun", "jumper", "ninja", "leaper")
#: Games that have procgen's "memory" distribution (example 09's "memory-hard" uses it there and
#: "hard" elsewhere).
MEMORY_GAMES: frozenset[str] = frozenset(
    {"dodgeball", "caveflyer", "heist", "jumper", "maze", "miner"}
)
DISTRIBUTIONS = ("easy", "hard", "memory-hard")
NUM_ACTIONS = 15
OBS_SHAPE = (64, 64, 3)


def _gym3_env_class() -> Any:
    try:
        # `import procgen` imports the old gym, which prints a notice to stderr and warns about
        # numpy 2; neither concerns this adapter, which never calls gym.
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            from procgen import ProcgenGym3Env
    except ImportError as err:
        raise require_optional("procgen-mirror", "procgen", "Procgen games") from err
    return ProcgenGym3Env


def _check_game(game: str) -> None:
    if game not in ALL_GAMES:
        close = difflib.get_close_matches(game, ALL_GAMES, n=3, cutoff=0.5)
        raise ValueError(
            f"Unknown Procgen game {game!r}. Close matches: {close or 'none'}. All: {ALL_GAMES}."
        )


def _distribution(game: str, mode: str) -> str:
    if mode not in DISTRIBUTIONS:
        raise ValueError(
            f"Procgen: distribution_mode must be one of {DISTRIBUTIONS}, got {mode!r}."
        )
    if mode == "memory-hard":
        return "memory" if game in MEMORY_GAMES else "hard"
    return mode


class _Gym3Single:
    """One procgen game through gym3 (``num=1``): ``act`` then ``observe`` per step."""

    def __init__(self, game: str, distribution: str, num_levels: int, start_level: int, seed: int):
        cls = _gym3_env_class()
        self.env = cls(
            num=1,
            env_name=game,
            num_levels=num_levels,
            start_level=start_level,
            distribution_mode=distribution,
            rand_seed=seed,
        )

    def observe(self) -> tuple[float, np.ndarray, bool]:
        reward, obs, first = self.env.observe()
        return float(reward[0]), np.array(obs["rgb"][0], dtype=np.uint8), bool(first[0])

    def step(self, action: int) -> tuple[float, np.ndarray, bool]:
        """Reward of this step, the next frame and whether the episode ended (procgen then
        already shows the first frame of the next episode)."""
        self.env.act(np.array([action], dtype=np.int32))
        return self.observe()

    def close(self) -> None:
        self.env.close()


class ProcgenGame(gym.Env):
    """One Procgen game; see the module docstring.

    Args:
        game: one of ``ALL_GAMES``.
        distribution_mode: ``"easy"``, ``"hard"`` or ``"memory-hard"`` (memory where the game
            has it).
        num_levels: number of distinct levels (0: unlimited). start_level: first level seed.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        game: str,
        *,
        distribution_mode: str = "easy",
        num_levels: int = 0,
        start_level: int = 0,
    ) -> None:
        super().__init__()
        _check_game(game)
        self.game = game
        self.distribution = _distribution(game, distribution_mode)
        self.num_levels = num_levels
        self.start_level = start_level
        self.observation_space = gym.spaces.Box(0, 255, OBS_SHAPE, np.uint8)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        _gym3_env_class()  # fail at construction, naming the extra
        self._env: _Gym3Single | None = None
        self._pending: np.ndarray | None = None  # first frame of the next episode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self._env is None or seed is not None:
            if self._env is not None:
                self._env.close()
            rand_seed = int(self.np_random.integers(2**31 - 1))
            self._env = _Gym3Single(
                self.game, self.distribution, self.num_levels, self.start_level, rand_seed
            )
            self._pending = self._env.observe()[1]
        if self._pending is None:  # reset before the episode ended: start a new one
            self._pending = self._restart()
        obs, self._pending = self._pending, None
        return obs, {}

    def _restart(self) -> np.ndarray:
        assert self._env is not None
        while True:  # gym3 has no reset: play random moves until the episode ends
            _, obs, first = self._env.step(int(self.np_random.integers(NUM_ACTIONS)))
            if first:
                return obs

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self._env is not None, "ProcgenGame: call reset() first."
        reward, obs, ended = self._env.step(int(np.asarray(action)))
        if ended:
            self._pending = obs
        return obs, reward, ended, False, {}

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


class ProcgenMultiGame(gym.Env):
    """AMAGO example 09's two-attempt multi-task Procgen; see the module docstring.

    Args:
        games: game names (default: example 09's five "easy" games).
        distribution_mode: as :class:`ProcgenGame`.
        level_range: ``(low, high)``: each trial's level is drawn uniformly from ``[low, high]``
            (example 09: ``(0, 10_000)`` for training, above that for testing).
        reward_scales: game -> reward multiplier (example 09's "easy-rescaled": coinrun x100,
            climber x0.1).
        attempts: plays of the level per trial (2).

    Attributes:
        ledger: the trial's ``AttemptLedger`` (attempt index and the end of the trial).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        games: Sequence[str] = EASY_GAMES,
        *,
        distribution_mode: str = "easy",
        level_range: Sequence[int] = (0, 10_000),
        reward_scales: Mapping[str, float] | None = None,
        attempts: int = 2,
    ) -> None:
        super().__init__()
        if not games:
            raise ValueError("ProcgenMultiGame: games must name at least one game.")
        for game in games:
            _check_game(game)
        low, high = (int(v) for v in level_range)
        if not 0 <= low <= high:
            raise ValueError(
                f"ProcgenMultiGame: level_range must be 0 <= low <= high, got {level_range}."
            )
        if attempts < 1:
            raise ValueError(f"ProcgenMultiGame: attempts must be >= 1, got {attempts}.")
        self.games = tuple(games)
        self.distribution_mode = distribution_mode
        for game in self.games:
            _distribution(game, distribution_mode)
        self.level_range = (low, high)
        self.reward_scales = dict(reward_scales or {})
        unknown = set(self.reward_scales) - set(self.games)
        if unknown:
            raise ValueError(
                f"ProcgenMultiGame: reward_scales for games not played: {sorted(unknown)}."
            )
        self.attempts = attempts
        self.observation_space = gym.spaces.Box(0, 255, OBS_SHAPE, np.uint8)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        _gym3_env_class()
        self._env: _Gym3Single | None = None
        self.game_id = 0
        self.level = 0
        self.ledger = AttemptLedger(attempts)

    @property
    def env_name(self) -> str:
        """Per-task name for metrics: the game being played."""
        return self.games[self.game_id]

    @property
    def attempt(self) -> int:
        """Index of the attempt being played (``attempts`` once the trial is over)."""
        return int(self.ledger.attempt)

    def _frame(self, obs: np.ndarray) -> np.ndarray:
        if self.attempt > 0:
            obs = obs.copy()
            obs[1:5, 1:5, :] = 0
        return obs

    def _info(self) -> dict[str, Any]:
        return {"game_id": self.game_id, "level": self.level, "attempt": self.attempt}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.game_id = int(self.np_random.integers(len(self.games)))
        self.level = int(self.np_random.integers(self.level_range[0], self.level_range[1] + 1))
        self.ledger.reset()
        if self._env is not None:
            self._env.close()
        game = self.games[self.game_id]
        self._env = _Gym3Single(
            game,
            _distribution(game, self.distribution_mode),
            num_levels=1,
            start_level=self.level,
            seed=int(self.np_random.integers(2**31 - 1)),
        )
        return self._frame(self._env.observe()[1]), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self._env is not None, "ProcgenMultiGame: call reset() first."
        reward, obs, ended = self._env.step(int(np.asarray(action)))
        reward *= self.reward_scales.get(self.games[self.game_id], 1.0)
        # with num_levels=1, procgen restarts the same level when an attempt ends
        terminated = bool(self.ledger.step(reward, ended))
        return self._frame(obs), reward, terminated, False, self._info()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
