"""Multi-task BabyAI as k-attempt trials (``minigrid`` package, ``babyai`` extra).

``MultiTaskBabyAI()`` (``make_env("babyai")``) follows AMAGO's ``examples/10_babyai.py``
(AMAGO-2's BabyAI setup): every trial draws a BabyAI level from ``tasks`` and a layout seed from
``seed_range`` and plays ``k_episodes`` attempts on that same (level, layout) pair. The agent is
not told the level; it reads the mission and may not have seen the layout. An attempt ends when
the level ends it (success or, for some levels, failure: ``terminated``) or at the level's step
limit; the next attempt restarts the same layout. The trial ends after the k-th attempt with
``terminated`` (the meta-episode is over, as in AMAGO). The step that ends an attempt returns the
reset observation of the next one (AMAGO instead inserts one extra zero-reward step there).

Observation: a ``Dict`` of float32 vectors, all one-hot / flags so the MLP timestep encoder can
read them as they are (AMAGO uses a small CNN over the raw grid and a token-RNN over the mission
instead; here every input is a fixed-size vector by design):

- ``"grid"`` [7 * 7 * 20]: the agent's 7x7 egocentric view (minigrid's symbolic ``image``), each
  cell one-hot over object type (11), colour (6) and door state (3), raveled in (x, y, feature)
  order;
- ``"direction"`` [4]: one-hot facing direction;
- ``"mission"`` [mission_length * len(VOCAB)]: the mission's words (commas dropped), one one-hot
  row per word position over ``VOCAB`` (the BabyAI grammar's 32 words, then ``"<unk>"``); unused
  positions are all zero. A mission longer than ``mission_length`` words raises (the levels of
  ``ALL_TASKS`` have at most 9);
- ``"trial"`` [2]: ``[reset_flag, attempt / k]``, 1.0 on the first observation of each attempt.

Actions ``Discrete(7)`` (left, right, forward, pickup, drop, toggle, done). Reward: minigrid's
``1 - 0.9 * steps / max_steps`` on success, else 0.

Through the info reader ``make_env`` attaches (``info_reader``) every step carries
``"episode_successes"`` [k] (an attempt succeeds if its reward is positive), ``"episode_returns"``
[k] (NaN for unfinished attempts) and ``"task_index"`` [] (index in ``task_names``);
``evaluate_policy`` reports ``episode_<i>_success``. Presets feed the encoder
``tstep.obs_keys=[direction, grid, mission, trial]``, not these entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from torchrl.envs.gym_like import default_info_dict_reader

from amago_rl.envs.attempts import AttemptLedger, attempt_info_reader
from amago_rl.errors import require_optional

VOCAB = [
    "a", "after", "and", "ball", "behind", "blue", "box", "door", "front", "go", "green", "grey",
    "in", "key", "left", "next", "object", "of", "on", "open", "pick", "purple", "put", "red",
    "right", "the", "then", "to", "up", "yellow", "you", "your", "<unk>",
]  # fmt: skip
# Levels left out of "all" (as in AMAGO): missions of several steps or sentences past 9 words.
EXCLUDED = (
    "GoToSeq", "OpenRedBlueDoorsDebug", "OpenTwoDoors", "OpenDoorsOrderN4Debug", "OpenDoorsOrder",
    "PutNextLocal", "PutNext", "MiniBossLevel", "BossLevel", "BossLevelNoUnlock", "SynthSeq",
    "SynthLoc", "Synth", "MoveTwoAcross",
)  # fmt: skip
# AMAGO's 50 meta-training levels (examples/10_babyai.py).
TRAIN_TASKS = [
    "GoToLocalS7N5", "GoToObjMaze", "KeyCorridor", "KeyCorridorS3R3", "GoToRedBall",
    "KeyCorridorS3R2", "KeyCorridorS3R1", "Unlock", "GoToLocalS8N4", "GoToObjMazeOpen",
    "KeyCorridorS4R3", "UnlockLocal", "GoToObjMazeS5", "GoToObjMazeS4R2", "GoToLocal",
    "PickupLoc", "UnlockPickup", "GoTo", "FindObjS6", "BlockedUnlockPickup", "KeyCorridorS5R3",
    "GoToObjS6", "KeyInBox", "Open", "GoToOpen", "GoToDoor", "FindObjS7", "OpenRedDoor",
    "PickupDist", "GoToImpUnlock", "UnblockPickup", "OpenDoor", "GoToObjMazeS4", "OneRoomS12",
    "GoToObjMazeS6", "GoToRedBallNoDists", "OpenDoorDebug", "GoToLocalS8N5", "OneRoomS20",
    "Pickup", "GoToRedBlueBall", "OpenDoorColor", "PickupAbove", "GoToObjDoor",
    "OpenRedBlueDoors", "UnlockToUnlock", "OneRoomS16", "GoToLocalS8N6", "OneRoomS8",
    "PickupDistDebug",
]  # fmt: skip
GRID_SIZE, CELL_FEATURES, NUM_DIRECTIONS = 7, (11, 6, 3), 4


def _minigrid() -> Any:
    try:
        import minigrid  # registers the BabyAI-* gymnasium ids
    except ImportError as err:
        raise require_optional("minigrid", "babyai", "BabyAI levels") from err
    return minigrid


def all_tasks() -> list[str]:
    """Every registered BabyAI level (``"GoToRedBall"``, ...) except ``EXCLUDED`` ones."""
    _minigrid()
    names = [k[len("BabyAI-") : -len("-v0")] for k in gym.registry if k.startswith("BabyAI-")]
    return sorted(n for n in names if not any(x in n for x in EXCLUDED))


def _resolve_tasks(tasks: str | Sequence[str]) -> list[str]:
    if tasks == "train":
        names = list(TRAIN_TASKS)
    elif tasks == "all":
        names = all_tasks()
    elif isinstance(tasks, str):
        names = [tasks]
    else:
        names = [t.removeprefix("BabyAI-").removesuffix("-v0") for t in tasks]
    known = set(all_tasks()) | set(TRAIN_TASKS)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(
            f"MultiTaskBabyAI: unknown BabyAI levels {unknown or '(none given)'}: give 'train' "
            f"(AMAGO's 50 levels), 'all' or a list of level names from {sorted(known)}."
        )
    return names


class MultiTaskBabyAI(gym.Env):
    """k attempts at one (BabyAI level, layout) per trial; see the module docstring.

    Args:
        tasks: ``"train"`` (AMAGO's 50 levels), ``"all"`` (every level but ``EXCLUDED``) or a list
            of level names (``"GoToRedBall"`` or ``"BabyAI-GoToRedBall-v0"``).
        k_episodes: attempts per trial (AMAGO: 2).
        seed_range: ``(low, high)``, layout seeds drawn uniformly from ``[low, high)`` (AMAGO:
            ``(0, 5000)`` for training, ``(5001, 1_000_000)`` for evaluation).
        mission_length: word positions of the ``"mission"`` encoding.

    Attributes:
        ledger: the trial's ``AttemptLedger`` (attempt index, success and return by attempt).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        tasks: str | Sequence[str] = "train",
        k_episodes: int = 2,
        seed_range: Sequence[int] = (0, 5000),
        mission_length: int = 9,
    ) -> None:
        super().__init__()
        _minigrid()
        low, high = (int(s) for s in seed_range)
        if k_episodes < 1 or not 0 <= low < high or mission_length < 1:
            raise ValueError(
                "MultiTaskBabyAI: need k_episodes >= 1, seed_range (low, high) with "
                f"0 <= low < high and mission_length >= 1; got {k_episodes}, {seed_range}, "
                f"{mission_length}."
            )
        self.task_names = _resolve_tasks(tasks)
        self.k_episodes, self.seed_range, self.mission_length = (
            k_episodes,
            (low, high),
            mission_length,
        )
        self._envs: dict[str, gym.Env] = {}
        flat = lambda n: gym.spaces.Box(0.0, 1.0, (n,), np.float32)  # noqa: E731
        self.observation_space = gym.spaces.Dict(
            {
                "grid": flat(GRID_SIZE * GRID_SIZE * sum(CELL_FEATURES)),
                "direction": flat(NUM_DIRECTIONS),
                "mission": flat(mission_length * len(VOCAB)),
                "trial": flat(2),
            }
        )
        self.action_space = gym.spaces.Discrete(7)
        self._offsets = np.cumsum((0, *CELL_FEATURES[:-1]))
        self.task_index, self.layout_seed = 0, low
        self.ledger = AttemptLedger(k_episodes)

    @property
    def attempt(self) -> int:
        """Index of the attempt being played (``k_episodes`` once the trial is over)."""
        return int(self.ledger.attempt)

    @property
    def task_name(self) -> str:
        return self.task_names[self.task_index]

    def _level(self) -> gym.Env:
        name = self.task_name
        if name not in self._envs:
            self._envs[name] = gym.make(f"BabyAI-{name}-v0")
        return self._envs[name]

    def encode(self, raw: dict[str, Any], reset_flag: bool) -> dict[str, np.ndarray]:
        """minigrid's ``{"image", "direction", "mission"}`` -> the observation dict."""
        image = np.asarray(raw["image"], dtype=np.int64)  # [7, 7, 3]
        grid = np.zeros((GRID_SIZE, GRID_SIZE, sum(CELL_FEATURES)), dtype=np.float32)
        rows, cols = np.indices((GRID_SIZE, GRID_SIZE))
        for feature, offset in enumerate(self._offsets):
            grid[rows, cols, offset + image[..., feature]] = 1.0
        direction = np.zeros(NUM_DIRECTIONS, dtype=np.float32)
        direction[int(raw["direction"])] = 1.0
        words = str(raw["mission"]).replace(",", " ").split()
        if len(words) > self.mission_length:
            raise ValueError(
                f"MultiTaskBabyAI: the mission {raw['mission']!r} of {self.task_name} has "
                f"{len(words)} words, more than mission_length={self.mission_length}: raise "
                "mission_length (env.kwargs.mission_length) or leave the level out."
            )
        mission = np.zeros((self.mission_length, len(VOCAB)), dtype=np.float32)
        for position, word in enumerate(words):
            mission[position, VOCAB.index(word) if word in VOCAB else len(VOCAB) - 1] = 1.0
        return {
            "grid": grid.reshape(-1),
            "direction": direction,
            "mission": mission.reshape(-1),
            "trial": self.ledger.trial_feature(reset_flag),
        }

    def _info(self) -> dict[str, Any]:
        return {**self.ledger.info(), "task_index": np.array(self.task_index, dtype=np.int64)}

    def _start_attempt(self) -> dict[str, Any]:
        raw, _ = self._level().reset(seed=self.layout_seed)  # same seed: same layout
        return raw

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.task_index = int(self.np_random.integers(len(self.task_names)))
        self.layout_seed = int(self.np_random.integers(*self.seed_range))
        self.ledger.reset()
        return self.encode(self._start_attempt(), True), self._info()

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        raw, reward, terminated, truncated, _ = self._level().step(int(np.asarray(action)))
        reward = float(reward)
        ended = terminated or truncated
        # success = a positive reward: minigrid rewards only the step that completes the level
        trial_over = bool(self.ledger.step(reward, ended, success=reward > 0.0))
        reset_flag = ended and not trial_over
        if reset_flag:  # soft reset: next attempt at the same layout
            raw = self._start_attempt()
        return self.encode(raw, reset_flag), reward, trial_over, False, self._info()

    def info_reader(self, num_envs: int | None = None) -> default_info_dict_reader:
        """The TorchRL reader of ``episode_successes``, ``episode_returns`` and ``task_index``
        (``attempt_info_reader``); ``make_env`` attaches it."""
        return attempt_info_reader(self.k_episodes, num_envs)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
