"""Alchemy's chemistry (Wang et al. 2021, §2): the hidden causal structure of one symbolic trial.

Our own code, following the paper's description of the task. The exact sets and distributions
below were checked against DeepMind's ``dm_alchemy`` source (read for facts, no code taken): its
``symbolic_alchemy`` level ``perceptual_mapping_randomized_with_rotation_and_random_bottleneck``,
the one AMAGO's example 06 plays. Nothing here imports ``dm_alchemy``.

- **Latent stone space**: a stone is a corner ``z`` of the cube ``{-1, +1}^3``. Its reward when
  put in the cauldron is ``z_0 + z_1 + z_2`` (-3, -1 or +1), except the all-``+1`` corner,
  which pays ``3 + 12 = 15``.
- **Stone appearance** (colour, size, roundness) ``= R @ (m * z)``: ``m in {-1, +1}^3`` reflects
  latent axes (8 choices) and ``R`` is the identity or a 45-degree rotation in one of the three
  feature planes (4 choices), scaled so every feature is -1, 0 or +1. The stone also shows its
  "value" ``(z_0 + z_1 + z_2) / 3``, which does not reveal the +15 bonus.
- **Potions**: 6 colours in 3 pairs. Pair ``c // 2`` acts on latent axis ``axis_of_pair[c // 2]``
  (a permutation, 6 choices) and the two colours of a pair push that axis in opposite directions:
  colour ``c`` moves a stone to ``z[axis] = sign(c) * axis_sign[axis]`` with ``sign(c) = -1`` for
  even ``c``, ``+1`` for odd (8 choices of ``axis_sign``).
- **Graph**: a potion only works along an existing cube edge. Per latent axis the 4 parallel
  edges are indexed by the other two coordinates ``(u, v)``; a constraint ``(cu, cv)``, each
  ``-1``, ``+1`` or ``*`` (any), keeps the edges with ``u == cu`` and ``v == cv``. Constraints that
  leave the 8 corners connected are the valid graphs: 1 with no constraint, 12 with one, 48 with
  two, 48 with three (all spanning trees). The number of constraints is drawn uniformly from
  {0, 1, 2, 3}, then a graph uniformly among those with that number (as ``dm_alchemy``'s
  ``random_bottleneck`` does), so a trial keeps 12, 10, 9 or 8, or 7 of the cube's 12 edges.

All maps are drawn independently and uniformly: 8 x 4 x 6 x 8 x 109 chemistries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np

#: Reward of the all-``+1`` latent corner on top of its coordinate sum (3 + 12 = 15).
BONUS = 12
#: Largest coordinate sum; the shown stone value is ``sum / VALUE_SCALE`` in [-1, 1].
VALUE_SCALE = 3.0
NUM_COLOURS = 6
#: Rotations: None (identity) or the feature plane (i, j) rotated by 45 degrees.
PLANES: tuple[tuple[int, int] | None, ...] = (None, (0, 1), (0, 2), (1, 2))

Corner = tuple[int, int, int]
#: Per axis, the constraint on the other two coordinates: each -1, +1 or 0 (= any).
Constraint = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]

CORNERS: tuple[Corner, ...] = tuple(itertools.product((-1, 1), repeat=3))  # type: ignore[assignment]


def stone_reward(z: Corner) -> int:
    """Cauldron reward of latent corner ``z``: the coordinate sum, 15 for ``(1, 1, 1)``."""
    total = sum(z)
    return total + BONUS if total == 3 else total


def _others(axis: int) -> tuple[int, int]:
    return tuple(i for i in range(3) if i != axis)  # type: ignore[return-value]


def edges_of(constraint: Constraint) -> frozenset[tuple[Corner, int]]:
    """The existing edges as ``(corner with z[axis] = -1, axis)`` pairs."""
    edges = set()
    for axis, pair in enumerate(constraint):
        u_axis, v_axis = _others(axis)
        for z in CORNERS:
            if z[axis] != -1:
                continue
            if all(c == 0 or z[i] == c for i, c in zip((u_axis, v_axis), pair, strict=True)):
                edges.add((z, axis))
    return frozenset(edges)


def _connected(edges: frozenset[tuple[Corner, int]]) -> bool:
    seen, frontier = {CORNERS[0]}, [CORNERS[0]]
    while frontier:
        z = frontier.pop()
        for axis in range(3):
            low = tuple(-1 if i == axis else c for i, c in enumerate(z))
            if (low, axis) in edges:
                nxt = tuple(-c if i == axis else c for i, c in enumerate(z))
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
    return len(seen) == len(CORNERS)


@cache
def valid_graphs() -> dict[int, tuple[frozenset[tuple[Corner, int]], ...]]:
    """Connected graphs by number of constraints: ``{0: 1 graph, 1: 12, 2: 48, 3: 48}``."""
    by_count: dict[int, list[frozenset[tuple[Corner, int]]]] = {}
    pairs = list(itertools.product((-1, 0, 1), repeat=2))
    for constraint in itertools.product(pairs, repeat=3):
        edges = edges_of(constraint)  # type: ignore[arg-type]
        if _connected(edges):
            count = sum(c != 0 for pair in constraint for c in pair)
            by_count.setdefault(count, []).append(edges)
    return {k: tuple(v) for k, v in sorted(by_count.items())}


def rotation_matrix(plane: tuple[int, int] | None) -> np.ndarray:
    """[3, 3] map from reflected latent coordinates to features: ``p_i = (a_i - a_j) / 2``,
    ``p_j = (a_i + a_j) / 2`` in the rotated plane ``(i, j)``, the identity elsewhere."""
    rot = np.eye(3)
    if plane is not None:
        i, j = plane
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = 0.5, -0.5, 0.5, 0.5
    return rot


@dataclass(frozen=True)
class Chemistry:
    """One trial's hidden rules (see the module docstring).

    Attributes:
        stone_signs: ``m`` [3], the latent-axis reflection of the stone appearance.
        plane: the rotated feature plane, or None.
        axis_of_pair: latent axis moved by each colour pair [3] (a permutation).
        axis_sign: ``sign`` [3] per latent axis: odd colours of the pair on that axis move it to
            ``+axis_sign``, even colours to ``-axis_sign``.
        edges: existing cube edges, ``(corner with z[axis] = -1, axis)``.
    """

    stone_signs: Corner
    plane: tuple[int, int] | None
    axis_of_pair: Corner
    axis_sign: Corner
    edges: frozenset[tuple[Corner, int]]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Chemistry:
        graphs = valid_graphs()
        count = list(graphs)[int(rng.integers(len(graphs)))]
        signs = tuple(int(s) for s in rng.choice((-1, 1), size=3))
        return cls(
            stone_signs=signs,  # type: ignore[arg-type]
            plane=PLANES[int(rng.integers(len(PLANES)))],
            axis_of_pair=tuple(int(a) for a in rng.permutation(3)),  # type: ignore[arg-type]
            axis_sign=tuple(int(s) for s in rng.choice((-1, 1), size=3)),  # type: ignore[arg-type]
            edges=graphs[count][int(rng.integers(len(graphs[count])))],
        )

    def features(self, z: Corner) -> np.ndarray:
        """Perceptual features [3] (colour, size, roundness), each -1, 0 or +1, of corner ``z``."""
        reflected = np.asarray(z, dtype=np.float64) * np.asarray(self.stone_signs)
        return rotation_matrix(self.plane) @ reflected

    def potion_effect(self, colour: int) -> tuple[int, int]:
        """``(latent axis, target value)`` of a potion colour in ``[0, 6)``."""
        axis = self.axis_of_pair[colour // 2]
        direction = 1 if colour % 2 else -1
        return axis, direction * self.axis_sign[axis]

    def has_edge(self, z: Corner, axis: int) -> bool:
        """Whether the cube edge from ``z`` along ``axis`` exists."""
        low = tuple(-1 if i == axis else c for i, c in enumerate(z))
        return (low, axis) in self.edges

    def apply(self, z: Corner, colour: int) -> Corner:
        """The corner a stone at ``z`` moves to in a potion of ``colour``: along the potion's axis
        to its target value when the stone is not there yet and the edge exists, else ``z``."""
        axis, target = self.potion_effect(colour)
        if z[axis] == target or not self.has_edge(z, axis):
            return z
        return tuple(target if i == axis else c for i, c in enumerate(z))  # type: ignore[return-value]
