"""AttemptLedger: the k-attempt bookkeeping shared by the suite adapters, for one env and a
batch (hand-computed arrays), and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from amago_rl.envs.attempts import AttemptLedger, attempt_info_reader

NAN = np.nan


def test_one_env_trial_of_two_attempts() -> None:
    ledger = AttemptLedger(2)
    ledger.reset()
    assert ledger.attempt.shape == () and ledger.attempt == 0
    np.testing.assert_array_equal(ledger.trial_feature(True), np.float32([1.0, 0.0]))
    info = ledger.info()
    assert np.isnan(info["episode_successes"]).all() and np.isnan(info["episode_returns"]).all()
    # attempt 0: rewards 1.5, 2.0, succeeds on its first step only (any step counts)
    assert not ledger.step(1.5, False, success=True)
    assert not ledger.step(2.0, True, success=False)
    assert ledger.attempt == 1
    np.testing.assert_array_equal(ledger.successes, np.float32([1.0, NAN]))
    np.testing.assert_array_equal(ledger.returns, np.float32([3.5, NAN]))
    np.testing.assert_array_equal(ledger.trial_feature(True), np.float32([1.0, 0.5]))
    # attempt 1: a fresh return and success, and the trial ends with it
    assert not ledger.step(0.25, False)
    over = ledger.step(0.5, True)
    assert over.dtype == bool and over.shape == () and bool(over)
    assert ledger.attempt == 2
    np.testing.assert_array_equal(ledger.successes, np.float32([1.0, 0.0]))
    np.testing.assert_array_equal(ledger.returns, np.float32([3.5, 0.75]))
    np.testing.assert_array_equal(ledger.trial_feature(False), np.float32([0.0, 1.0]))
    ledger.reset()
    assert ledger.attempt == 0 and np.isnan(ledger.returns).all()
    ledger.step(1.0, False, success=True)
    ledger.reset()  # mid-attempt: that attempt's return and success are dropped
    ledger.step(4.0, True)
    assert ledger.returns[0] == 4.0 and ledger.successes[0] == 0.0


def test_batch_rows_end_and_reset_on_their_own() -> None:
    ledger = AttemptLedger(2, (3,), unfinished=0.0)
    ledger.reset()
    over = ledger.step([1.0, 2.0, 3.0], [True, False, True], success=[False, True, True])
    np.testing.assert_array_equal(over, [False, False, False])
    np.testing.assert_array_equal(ledger.attempt, [1, 0, 1])
    np.testing.assert_array_equal(ledger.returns, np.float32([[1, 0], [0, 0], [3, 0]]))
    np.testing.assert_array_equal(ledger.successes, np.float32([[0, 0], [0, 0], [1, 0]]))
    over = ledger.step(np.float32([10.0, 20.0, 30.0]), np.array([True, True, False]))
    np.testing.assert_array_equal(over, [True, False, False])
    np.testing.assert_array_equal(ledger.returns, np.float32([[1, 10], [22, 0], [3, 0]]))
    np.testing.assert_array_equal(ledger.successes, np.float32([[0, 0], [1, 0], [1, 0]]))
    feature = ledger.trial_feature(np.array([False, True, False]))
    assert feature.dtype == np.float32
    np.testing.assert_array_equal(feature, np.float32([[0, 1], [1, 0.5], [0, 0.5]]))
    ledger.reset(np.array([True, False, False]))  # only row 0's trial restarts
    np.testing.assert_array_equal(ledger.attempt, [0, 1, 1])
    np.testing.assert_array_equal(ledger.returns[0], [0, 0])
    np.testing.assert_array_equal(ledger.returns[1:], np.float32([[22, 0], [3, 0]]))
    over = ledger.step(0.5, [False, True, True])  # a scalar reward is every row's
    np.testing.assert_array_equal(over, [False, True, True])
    np.testing.assert_array_equal(ledger.returns, np.float32([[0, 0], [22, 0.5], [3, 30.5]]))


def test_info_returns_copies() -> None:
    ledger = AttemptLedger(1)
    info = ledger.info()
    info["episode_returns"][0] = 5.0
    assert np.isnan(ledger.returns[0])
    assert set(info) == {"episode_successes", "episode_returns"}


@pytest.mark.parametrize("k", [0, -1, 1.5, True, None])
def test_bad_k_says_what_is_valid(k: object) -> None:
    with pytest.raises(ValueError, match=r"AttemptLedger: k \(attempts per trial\) must be an int"):
        AttemptLedger(k)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [3, (2, -1), (2.0,)])
def test_bad_batch_shape_says_what_is_valid(shape: object) -> None:
    with pytest.raises(ValueError, match=r"batch_shape must be a tuple of ints >= 0"):
        AttemptLedger(2, shape)  # type: ignore[arg-type]


def test_inputs_of_the_wrong_shape_are_refused() -> None:
    ledger = AttemptLedger(2, (3,))
    with pytest.raises(ValueError, match=r"ended has shape \(3, 1\), expected the batch shape"):
        ledger.step(np.zeros(3), np.zeros((3, 1), dtype=bool))
    with pytest.raises(ValueError, match=r"reward has shape \(2,\)"):
        ledger.step(np.zeros(2), False)
    with pytest.raises(ValueError, match=r"rows has shape \(4,\)"):
        ledger.reset(np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match=r"reset_flag has shape \(1,\), expected .* \(\)"):
        AttemptLedger(2).trial_feature([True])


def test_an_attempt_past_the_trials_end_asks_for_a_reset() -> None:
    ledger = AttemptLedger(1, (2,))
    ledger.step([1.0, 1.0], [True, False])
    ledger.step([1.0, 1.0], [False, False])  # steps that end nothing are fine
    with pytest.raises(RuntimeError, match=r"after all k=1 attempts .*rows \[\[0\]\]"):
        ledger.step([1.0, 1.0], [True, True])
    ledger.reset([True, False])
    assert ledger.step([1.0, 1.0], [True, True]).tolist() == [True, True]


@pytest.mark.parametrize("num_envs", [None, 4])
def test_attempt_info_reader_specs(num_envs: int | None) -> None:
    reader = attempt_info_reader(3, num_envs)
    batch = () if num_envs is None else (num_envs,)
    assert reader.info_spec["episode_successes"].shape == (*batch, 3)
    assert reader.info_spec["episode_returns"].shape == (*batch, 3)
    assert reader.info_spec["task_index"].shape == batch
