"""Arcade Learning Environment adapter (``ale-py`` package, ROMs included, in the ``atari`` extra).

``AtariGame("Pong")`` (``make_env("ale/Pong")``) is one game as AMAGO's example 08 prepares it:

- observation ``[84, 84, 3]`` uint8 RGB (``channels_last``; ``[3, 84, 84]`` otherwise), the
  210 x 160 screen area-averaged down to 84 x 84 (the weights of OpenCV's ``INTER_AREA``,
  computed here so OpenCV is not needed);
- actions ``Discrete(18)``: the full ALE action set for every game, so several games share one
  action space (a game ignores the inputs it has no use for);
- ALE's own frame skip (5 frames per step, rewards summed, the last frame shown), sticky actions
  with probability 0.25, no reward clipping, no life-loss terminals;
- ``terminated`` at game over, ``truncated`` once ``time_limit`` frames (108,000 = 30 minutes of
  play, 21,600 steps at frame skip 5) have passed.

``AtariMultiGame(games)`` (``make_env("atari_multigame")``) plays one of several games per copy:
the game of a copy is ``games[seed % len(games)]`` for the seed of its first seeded reset.
``make_env`` seeds copy ``i`` with ``seed + i``, so ``num_envs`` a multiple of ``len(games)``
plays every game equally often in parallel, as example 08 assigns its actors. ``assign="random"``
draws a new game at every reset instead. ``info["game_id"]`` and the ``game_id`` attribute name
the game (its index in ``games``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from amago_rl.errors import require_optional

#: AMAGO example 08's default games.
MULTIGAME_GAMES: tuple[str, ...] = (
    "Pong",
    "Boxing",
    "Breakout",
    "Gopher",
    "MsPacman",
    "ChopperCommand",
    "CrazyClimber",
    "BattleZone",
    "Qbert",
    "Seaquest",
)
NUM_ACTIONS = 18
SCREEN = (210, 160)


def _ale() -> Any:
    try:
        import ale_py
    except ImportError as err:
        raise require_optional("ale-py", "atari", "Atari games") from err
    gym.register_envs(ale_py)
    return ale_py


def atari_names() -> list[str]:
    """Every game of the installed ``ale-py`` in gymnasium's spelling (``"Pong"``, ...)."""
    _ale()
    return sorted(
        {
            spec.id[len("ALE/") : -len("-v5")]
            for spec in gym.registry.values()
            if spec.id.startswith("ALE/") and spec.id.endswith("-v5")
        }
    )


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """``[size_out, size_in]`` float32 rows averaging the input cells each output cell covers,
    partial cells weighted by their overlap (area resampling for downscaling)."""
    if size_out > size_in:
        raise ValueError(f"area_weights: {size_out} > {size_in}; only downscaling is supported.")
    scale = size_in / size_out
    edges = np.arange(size_out + 1) * scale
    cells = np.arange(size_in)
    lo = np.maximum(edges[:-1, None], cells[None, :])
    hi = np.minimum(edges[1:, None], cells[None, :] + 1)
    return (np.clip(hi - lo, 0.0, None) / scale).astype(np.float32)


class AtariGame(gym.Env):
    """One Atari game at AMAGO example 08's settings; see the module docstring.

    Args:
        game: gymnasium's name of the game (``"Pong"``, ``"MsPacman"``; see ``atari_names()``).
        resolution: ``(H, W)`` of the observation.
        frame_skip: emulator frames per step (ALE repeats the action; rewards are summed).
        sticky_action_prob: ALE's probability of repeating the previous action on each frame.
        time_limit: frames before the episode is truncated.
        channels_last: ``[H, W, 3]`` observations, else ``[3, H, W]``.
        terminal_on_life_loss: also terminate when a life is lost.
        clip_rewards: clip the step reward to ``[-1, 1]``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        game: str,
        *,
        resolution: Sequence[int] = (84, 84),
        frame_skip: int = 5,
        sticky_action_prob: float = 0.25,
        time_limit: int = 108_000,
        channels_last: bool = True,
        terminal_on_life_loss: bool = False,
        clip_rewards: bool = False,
    ) -> None:
        super().__init__()
        _ale()
        env_id = f"ALE/{game}-v5"
        if env_id not in gym.registry:
            close = difflib.get_close_matches(game, atari_names(), n=5, cutoff=0.5)
            raise ValueError(
                f"Unknown Atari game {game!r}. Close matches: {close or 'none'}. "
                "All: amago_rl.envs.suites.atari.atari_names()."
            )
        if frame_skip < 1 or time_limit < 1:
            raise ValueError("AtariGame: frame_skip and time_limit must be >= 1.")
        height, width = (int(s) for s in resolution)
        self.game = game
        self.frame_skip = frame_skip
        self.time_limit = time_limit
        self.channels_last = channels_last
        self.terminal_on_life_loss = terminal_on_life_loss
        self.clip_rewards = clip_rewards
        self._env = gym.make(
            env_id,
            frameskip=frame_skip,
            repeat_action_probability=sticky_action_prob,
            full_action_space=True,
            obs_type="rgb",
            max_num_frames_per_episode=time_limit,
        )
        self._rows = torch.from_numpy(area_weights(SCREEN[0], height))  # [H, 210]
        self._cols = torch.from_numpy(area_weights(SCREEN[1], width).T.copy())  # [160, W]
        shape = (height, width, 3) if channels_last else (3, height, width)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.frames = 0
        self.lives = 0

    def screen(self, frame: np.ndarray) -> np.ndarray:
        """``[210, 160, 3]`` uint8 -> the observation (area-resized, laid out)."""
        # torch, not numpy: numpy's OpenBLAS starts its own threads, which on a busy 2-core
        # machine made this matmul 40x slower (72 ms instead of 1.6 ms).
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float()
        x = (self._rows @ x @ self._cols).round_().clamp_(0, 255).to(torch.uint8)  # [3, H, W]
        return (x.permute(1, 2, 0) if self.channels_last else x).contiguous().numpy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self._env.reset(seed=seed)
        self.frames = 0
        self.lives = int(info.get("lives", 0))
        return self.screen(obs), {"lives": self.lives}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(int(np.asarray(action)))
        self.frames += self.frame_skip
        lives = int(info.get("lives", 0))
        if self.terminal_on_life_loss and lives < self.lives:
            terminated = True
        self.lives = lives
        truncated = (bool(truncated) or self.frames >= self.time_limit) and not terminated
        reward = float(reward)
        if self.clip_rewards:
            reward = max(min(reward, 1.0), -1.0)
        return self.screen(obs), reward, bool(terminated), truncated, {"lives": lives}

    def close(self) -> None:
        self._env.close()


class AtariMultiGame(gym.Env):
    """Several Atari games behind one observation and action space (multi-task Atari, AMAGO-2).

    Args:
        games: gymnasium game names (default: example 08's ten).
        assign: ``"seed"`` (a copy plays ``games[seed % len(games)]`` from its first seeded
            reset on; unseeded, a random game) or ``"random"`` (a random game at every reset).
        **game_kwargs: options of :class:`AtariGame`, shared by all games.

    Attributes:
        game_id: index in ``games`` of the game being played; also ``info["game_id"]``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        games: Sequence[str] = MULTIGAME_GAMES,
        *,
        assign: str = "seed",
        **game_kwargs: Any,
    ) -> None:
        super().__init__()
        if assign not in ("seed", "random"):
            raise ValueError(f"AtariMultiGame: assign must be 'seed' or 'random', got {assign!r}.")
        if not games:
            raise ValueError("AtariMultiGame: games must name at least one game.")
        self.games = tuple(games)
        self.assign = assign
        self._game_kwargs = game_kwargs
        self._built: dict[int, AtariGame] = {}
        self._seeded: set[int] = set()
        self.game_id: int | None = None
        probe = self._game(0)  # also checks the options once
        for name in self.games[1:]:
            if f"ALE/{name}-v5" not in gym.registry:
                AtariGame(name, **game_kwargs)  # raises with close matches
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space

    def _game(self, game_id: int) -> AtariGame:
        if game_id not in self._built:
            self._built[game_id] = AtariGame(self.games[game_id], **self._game_kwargs)
        return self._built[game_id]

    @property
    def env_name(self) -> str:
        """Per-task name for metrics: the game being played."""
        return self.games[self.game_id or 0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.assign == "seed" and seed is not None:
            self.game_id = seed % len(self.games)
        elif self.assign == "random" or self.game_id is None:
            self.game_id = int(self.np_random.integers(len(self.games)))
        fresh = self.game_id not in self._seeded
        if seed is None and fresh:  # a game built after the seeded reset follows np_random
            seed = int(self.np_random.integers(2**31 - 1))
        self._seeded.add(self.game_id)
        obs, info = self._game(self.game_id).reset(seed=seed)
        return obs, {**info, "game_id": self.game_id}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.game_id is not None, "AtariMultiGame: call reset() first."
        obs, reward, terminated, truncated, info = self._game(self.game_id).step(action)
        return obs, reward, terminated, truncated, {**info, "game_id": self.game_id}

    def close(self) -> None:
        for game in self._built.values():
            game.close()
