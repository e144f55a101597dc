"""benchmarks/learning/count_recall_baseline.py: the CountRecallEasy reference returns."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("popgym")


@pytest.fixture(scope="module")
def baseline(benchmark_script: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_script("count_recall_baseline.py")


def test_recorded_counts_are_what_the_reward_checks(baseline: ModuleType) -> None:
    """Answering the recorded count at every step must score a perfect +1 (51 x 1/51)."""
    rng = np.random.default_rng(0)
    table: dict = defaultdict(Counter)
    baseline.play(lambda key: 0, 1, np.random.default_rng(1), table)
    # Replay the same episode (same seed stream), answering from the table's single entries.
    truth = {key: counts.most_common(1)[0][0] for key, counts in table.items()}
    mean, _ = baseline.play(lambda key: truth[key], 1, np.random.default_rng(1))
    assert mean == pytest.approx(1.0)
    random_mean, _ = baseline.play(lambda key: int(rng.integers(27)), 20, rng)
    assert random_mean < -0.8


def test_memoryless_mode_beats_random_and_stays_far_below_counting(baseline: ModuleType) -> None:
    rng = np.random.default_rng(0)
    table: dict = defaultdict(Counter)
    baseline.play(lambda key: 0, 400, rng, table)
    mode = {key: counts.most_common(1)[0][0] for key, counts in table.items()}
    memoryless, _ = baseline.play(lambda key: mode.get(key, (key[0] + 1) // 2), 200, rng)
    assert -0.6 < memoryless < -0.2
