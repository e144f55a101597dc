"""Symbolic Alchemy (Wang et al. 2021, "Alchemy: A benchmark and analysis toolkit for
meta-reinforcement learning agents"): our own implementation of the symbolic version that
AMAGO's example 06 trains on.

Naming: the paper calls one chemistry's run of 10 rounds an *episode* and each round a *trial*.
Here (as in the rest of amago_rl) the 10 rounds are one **trial** and each round is an inner
**episode**: ``SymbolicAlchemy`` is the paper's episode, ``AlchemyEpisode`` the paper's trial.

A trial draws a hidden chemistry (``alchemy_chemistry.Chemistry``: a latent cube of stone states,
its reflection and rotation into what a stone looks like, which potion colour moves which latent
axis which way, and which cube edges are missing). Each of its ``episodes_per_trial`` episodes
deals ``num_stones`` new stones (uniform latent corners) and ``num_potions`` new potions (uniform
colours) and lasts exactly ``steps_per_episode`` steps. Dipping a stone in a potion uses the
potion up and moves the stone along one latent axis if the edge exists (else nothing happens);
putting a stone in the cauldron removes it and pays its reward (-3, -1, +1, or +15 for the best
corner, so bad stones are best left alone). Every episode pays 0 until a stone goes in the
cauldron. What can be learned across episodes is the chemistry: which colours improve which
stones.

Observation (``KEpisodeTrial``'s ``Dict``): ``"observation"`` [5 S + 2 P] float32 (``[39]`` for
S = 3 stones, P = 12 potions), per stone slot ``[colour, size, roundness, value, used]`` (features
-1 / 0 / +1, value = coordinate sum / 3), then per potion slot ``[colour / 3 - 1, used]`` (six
colours -1, -2/3, ..., 2/3). An empty slot (used, or never dealt) shows 2.0 for a stone's four
features and 1.0 for a potion's colour, and ``used = 1``: values outside the real ones, as in
``dm_alchemy``'s symbolic observation, whose layout and value ranges this one follows. Plus
``"episode_reset"`` [1] and ``"episode_progress"`` [1] (``hide_progress=True`` drops the latter);
``dm_alchemy`` shows neither (its agents see new stones appear instead).

Actions ``Discrete(1 + S (P + 1))`` (``40``): 0 no-op; ``1 + s (P + 1)`` stone ``s`` in the
cauldron; ``1 + s (P + 1) + 1 + p`` stone ``s`` in potion ``p``. Acting on an empty slot does
nothing. This is ``dm_alchemy``'s slot-based integer action without its optional "end trial".

Choices (where the paper is silent, ``dm_alchemy``'s symbolic defaults, which AMAGO used): 3
stones and 12 potions per episode, 20 steps per episode, 10 episodes per trial (200 steps, so
AMAGO's context of 201 sees a whole trial), the graph prior and map distributions of
``alchemy_chemistry``. No early end: an episode runs its 20 steps even when nothing is left.
The episode and trial ends are ``terminated`` (fixed horizon, shown by ``episode_progress``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from amago_rl.envs.builtin.alchemy_chemistry import (
    NUM_COLOURS,
    VALUE_SCALE,
    Chemistry,
    Corner,
    stone_reward,
)
from amago_rl.envs.trials import KEpisodeTrial

#: ``reset(options={NEW_CHEMISTRY: True})`` draws a new chemistry (a seeded reset also does).
NEW_CHEMISTRY = "new_chemistry"
STONE_FEATURES = 5  # 3 perceptual features, value, used
POTION_FEATURES = 2  # colour, used
EMPTY_STONE = 2.0
EMPTY_POTION = 1.0


class AlchemyEpisode(gym.Env):
    """One Alchemy episode (the paper's "trial"): fresh stones and potions, the same chemistry
    until ``reset(options={"new_chemistry": True})`` or a seeded reset; see the module docstring.

    Args:
        num_stones: stone slots S (stones dealt per episode).
        num_potions: potion slots P (potions dealt per episode).
        steps_per_episode: the episode's fixed length.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, num_stones: int = 3, num_potions: int = 12, steps_per_episode: int = 20):
        super().__init__()
        if num_stones < 1 or num_potions < 1 or steps_per_episode < 1:
            raise ValueError(
                "AlchemyEpisode: num_stones, num_potions and steps_per_episode must be >= 1; got "
                f"{num_stones}, {num_potions}, {steps_per_episode}."
            )
        self.num_stones = num_stones
        self.num_potions = num_potions
        self.steps_per_episode = steps_per_episode
        size = STONE_FEATURES * num_stones + POTION_FEATURES * num_potions
        self.observation_space = gym.spaces.Box(-1.0, 2.0, shape=(size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(1 + num_stones * (num_potions + 1))
        self.chemistry: Chemistry | None = None
        self.stones: list[Corner | None] = []
        self.potions: list[int | None] = []
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.chemistry is None or seed is not None or (options or {}).get(NEW_CHEMISTRY):
            self.chemistry = Chemistry.sample(self.np_random)
        rng = self.np_random
        corners = rng.choice((-1, 1), size=(self.num_stones, 3))
        self.stones = [tuple(int(c) for c in z) for z in corners]  # type: ignore[misc]
        self.potions = [int(c) for c in rng.integers(NUM_COLOURS, size=self.num_potions)]
        self.t = 0
        return self._obs(), {}

    def decode(self, action: int) -> tuple[int, int | None] | None:
        """``None`` (no-op), ``(stone, None)`` (cauldron) or ``(stone, potion)``."""
        if action == 0:
            return None
        stone, slot = divmod(action - 1, self.num_potions + 1)
        return stone, (slot - 1 if slot else None)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"AlchemyEpisode: action must be in [0, {self.action_space.n}).")
        if self.chemistry is None:
            raise RuntimeError("AlchemyEpisode: call reset() before step().")
        reward = 0.0
        move = self.decode(action)
        if move is not None and self.stones[move[0]] is not None:
            stone, potion = move
            z = self.stones[stone]
            if potion is None:
                reward = float(stone_reward(z))
                self.stones[stone] = None
            elif self.potions[potion] is not None:
                self.stones[stone] = self.chemistry.apply(z, self.potions[potion])
                self.potions[potion] = None
        self.t += 1
        return self._obs(), reward, self.t >= self.steps_per_episode, False, {}

    def _obs(self) -> np.ndarray:
        assert self.chemistry is not None
        out = np.empty(self.observation_space.shape, dtype=np.float32)
        for i, z in enumerate(self.stones):
            row = out[STONE_FEATURES * i : STONE_FEATURES * (i + 1)]
            if z is None:
                row[:4], row[4] = EMPTY_STONE, 1.0
            else:
                row[:3] = self.chemistry.features(z)
                row[3], row[4] = sum(z) / VALUE_SCALE, 0.0
        start = STONE_FEATURES * self.num_stones
        for i, colour in enumerate(self.potions):
            j = start + POTION_FEATURES * i
            out[j], out[j + 1] = (EMPTY_POTION, 1.0) if colour is None else (colour / 3 - 1, 0.0)
        return out

    def oracle_action(self) -> int:
        """A scripted agent that reads the hidden chemistry: among the stones that can still reach
        a corner worth > 0 with the potions left and the steps left, take the one with the
        best reachable reward (then the shortest path) and make its next move (a potion, or the
        cauldron once it is there). No-op when no stone is worth using. Greedy over stones, so
        not always optimal when stones compete for potions."""
        budget = self.steps_per_episode - self.t
        best: tuple[int, int, int] | None = None  # (reward, -path length, action)
        for s, z in enumerate(self.stones):
            if z is None:
                continue
            for reward, path in self._reachable(z, budget - 1):
                if reward > 0 and (best is None or (reward, -len(path)) > best[:2]):
                    first = 1 + s * (self.num_potions + 1)
                    action = first if not path else first + 1 + self.potions.index(path[0])
                    best = (reward, -len(path), action)
        return 0 if best is None else best[2]

    def _reachable(self, z: Corner, max_potions: int) -> list[tuple[int, list[int]]]:
        """``(reward, colours to use)`` of the shortest way to every corner reachable from ``z``
        with the potions left (breadth-first over corner and potions left)."""
        assert self.chemistry is not None
        counts = tuple(self.potions.count(c) for c in range(NUM_COLOURS))
        queue: deque[tuple[Corner, tuple[int, ...], list[int]]] = deque([(z, counts, [])])
        seen, found = {(z, counts)}, {z: []}
        while queue:
            corner, left, path = queue.popleft()
            if len(path) >= max_potions:
                continue
            for colour in range(NUM_COLOURS):
                nxt = self.chemistry.apply(corner, colour)
                if not left[colour] or nxt == corner:
                    continue
                rest = tuple(n - (i == colour) for i, n in enumerate(left))
                if (nxt, rest) not in seen:
                    seen.add((nxt, rest))
                    longer = [*path, colour]
                    found.setdefault(nxt, longer)
                    queue.append((nxt, rest, longer))
        return [(stone_reward(c), p) for c, p in found.items()]


class SymbolicAlchemy(KEpisodeTrial):
    """A trial of ``episodes_per_trial`` Alchemy episodes under one chemistry (the paper's
    "episode" of 10 "trials"); a new chemistry at every reset. See the module docstring.

    Args:
        episodes_per_trial: k, episodes per chemistry.
        steps_per_episode, num_stones, num_potions: as in ``AlchemyEpisode``.
        hide_progress: drop ``"episode_progress"`` from the observation.
    """

    def __init__(
        self,
        episodes_per_trial: int = 10,
        steps_per_episode: int = 20,
        num_stones: int = 3,
        num_potions: int = 12,
        hide_progress: bool = False,
    ) -> None:
        inner = AlchemyEpisode(num_stones, num_potions, steps_per_episode)
        super().__init__(inner, k=episodes_per_trial, hide_progress=hide_progress)

    @property
    def episode(self) -> AlchemyEpisode:
        """The inner episode env (its ``chemistry``, ``stones``, ``potions``, oracle)."""
        return self.env  # type: ignore[return-value]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return super().reset(seed=seed, options={**(options or {}), NEW_CHEMISTRY: True})
