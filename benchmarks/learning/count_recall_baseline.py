"""Reference returns for POPGym CountRecallEasy that need no learning (issue #6, row 2).

CountRecallEasy deals 52 cards of 2 colours; at every step the agent must name how many cards of
the queried colour it has been dealt so far (27 answers, ``+1/51`` if exact, ``-1/51`` otherwise).
Three policies, each over ``--episodes`` episodes with a fixed seed:

- ``memoryless optimum``: knows only what one step shows (step index ``t``, dealt colour, queried
  colour) and answers the most likely count given those, estimated by Monte Carlo on separate
  episodes. This is the best any agent without memory can do when it knows ``t``; an agent that
  counts exactly scores ``+1``.
- ``half of t``: answers ``(t + 1) // 2`` (the prior mean, no counting).
- ``random``: uniform over the 27 answers.

    python benchmarks/learning/count_recall_baseline.py [--episodes 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np

Key = tuple[int, int, int]  # (step t, queried colour, dealt colour)


def play(
    policy: Callable[[Key], int],
    episodes: int,
    rng: np.random.Generator,
    table: dict[Key, Counter[int]] | None = None,
) -> tuple[float, float]:
    """Mean episode return and its standard error; fills ``table`` with the true counts seen."""
    from popgym.envs.count_recall import CountRecallEasy

    returns = []
    for _ in range(episodes):
        env = CountRecallEasy()
        obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
        t, total, done = 0, 0.0, False
        while not done:
            key = (t, int(obs[1]), int(obs[0]))
            if table is not None:  # the count the reward of this step's answer checks
                table[key][int(env.counts[env.query])] += 1
            obs, reward, done, _, _ = env.step(policy(key))
            total += float(reward)
            t += 1
        returns.append(total)
    return float(np.mean(returns)), float(np.std(returns) / np.sqrt(len(returns)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5000, help="episodes per policy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    table: dict[Key, Counter[int]] = defaultdict(Counter)
    play(lambda key: 0, 4 * args.episodes, rng, table)  # Monte Carlo estimate of P(count | key)
    mode = {key: counts.most_common(1)[0][0] for key, counts in table.items()}
    policies: dict[str, Callable[[Key], int]] = {
        "memoryless optimum": lambda key: mode.get(key, (key[0] + 1) // 2),
        "half of t": lambda key: (key[0] + 1) // 2,
        "random": lambda key: int(rng.integers(27)),
    }
    print("| policy | mean return | standard error |\n|---|---:|---:|")
    for name, policy in policies.items():
        mean, sem = play(policy, args.episodes, rng)
        print(f"| {name} | {mean:.3f} | {sem:.3f} |")


if __name__ == "__main__":
    main()
