"""A small XLand-MiniGrid ruleset family made in-process (no download): "hidden pick-up".

Each ruleset places ``1 + distractors`` distinct objects (tile type x colour) in the world and
asks the agent to *hold* a goal object that is not there. One hidden rule turns exactly one of
the placed objects into the goal object when the agent picks it up (``AgentHoldRule``), so the
goal is reached by picking up the right object; which one it is can only be learned by trying.
Objects are re-placed at every attempt, their identities stay, so an agent that remembers which
object worked in an earlier attempt of the trial picks it up first; a memoryless agent has to try
objects again (an expected ``(distractors + 2) / 2`` pick-ups at chance).

Objects are drawn from the six pick-up-able tile types (ball, square, pyramid, key, hex, star) and
the eleven colours; ``hidden_pickup(num, distractors, seed)`` returns an
``xminigrid.benchmarks.Benchmark`` (goals [num, 5], rules [num, 1, 7], init_tiles
[num, 1 + distractors, 2], num_rules [num]).
"""

from __future__ import annotations

from typing import Any

import numpy as np

OBJECT_TILES = (3, 4, 5, 7, 11, 12)  # ball, square, pyramid, key, hex, star (xminigrid Tiles)
COLOURS = tuple(range(1, 12))  # red .. pink (xminigrid Colors, without EMPTY)


def hidden_pickup(num: int = 1000, distractors: int = 2, seed: int = 0) -> Any:
    """``num`` hidden pick-up rulesets with ``distractors`` decoys each (see module docstring)."""
    import jax.numpy as jnp
    from xminigrid.benchmarks import Benchmark
    from xminigrid.core.goals import AgentHoldGoal
    from xminigrid.core.rules import AgentHoldRule

    if num < 1 or distractors < 0:
        raise ValueError(
            f"hidden_pickup: need num >= 1, distractors >= 0; got {num}, {distractors}."
        )
    objects = np.array([(t, c) for t in OBJECT_TILES for c in COLOURS], dtype=np.uint8)
    rng = np.random.default_rng(seed)
    chosen = np.stack(
        [objects[rng.choice(len(objects), size=2 + distractors, replace=False)] for _ in range(num)]
    )  # [num, 2 + distractors, 2]: goal object, the rule's source object, decoys
    # Encodings are [type id, arguments..., zero padding]; the type ids come from xminigrid.
    probe = jnp.asarray(objects[0])
    goal_id = int(AgentHoldGoal(tile=probe).encode()[0])
    rule_id = int(AgentHoldRule(tile=probe, prod_tile=probe).encode()[0])
    goals = np.zeros((num, 5), dtype=np.uint8)
    goals[:, 0], goals[:, 1:3] = goal_id, chosen[:, 0]
    rules = np.zeros((num, 1, 7), dtype=np.uint8)
    rules[:, 0, 0], rules[:, 0, 1:3], rules[:, 0, 3:5] = rule_id, chosen[:, 1], chosen[:, 0]
    placed = chosen[:, 1:]
    tiles = np.stack([p[rng.permutation(len(p))] for p in placed])  # source not always first
    return Benchmark(
        goals=jnp.asarray(goals),
        rules=jnp.asarray(rules),
        init_tiles=jnp.asarray(tiles),
        num_rules=jnp.ones(num, dtype=jnp.int32),
    )
