"""benchmarks/learning/terminal_values.py: critic values at the replay's terminations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from amago_rl.cli import load_config
from amago_rl.data import SequenceReplay
from amago_rl.trainer import Trainer


def test_terminal_values_of_a_cartpole_run(
    tmp_path: Path, tiny_run: list[str], benchmark_script: Callable[[str], ModuleType]
) -> None:
    run_dir = tmp_path / "seed_0"
    overrides = [
        "experiment=cartpole_ff",
        *tiny_run,
        "trainer.timesteps_per_epoch=60",  # random CartPole episodes end after ~10-40 steps
        "replay.save_every=null",  # whole episodes only
        "model.max_seq_len=15",
    ]
    Trainer(load_config(overrides), run_dir).train()
    script = benchmark_script("terminal_values.py")
    out = tmp_path / "report"
    (row,) = script.main([str(run_dir), "--out", str(out)])
    assert json.loads((out / "terminal_values.json").read_text()) == [row]

    # independent count of the stored episodes that end in a termination, by length
    replay = SequenceReplay(10_000, 15, 1, scratch_dir=run_dir / "replay")
    assert replay.load()
    short = long = 0
    for sid in replay.sampler.segment_ids:
        index = replay.sampler.segment_index(sid)
        if bool(replay.buffer.storage[index[-2]]["next", "terminated"].any()):
            short, long = (short + 1, long) if index.numel() <= 16 else (short, long + 1)
    assert short > 0 and long > 0  # both groups occur with random play and a 16-token window
    assert row["fits_window"]["terminations"] == short
    assert row["longer_than_window"]["terminations"] == long
    for name in ("fits_window", "longer_than_window"):
        group = row[name]
        if group["terminations"]:
            assert group["target_mean"] == 1.0  # CartPole reward 1, reward_multiplier 1
            assert torch.isfinite(torch.tensor(group["q_mean"]))
    assert "| longer_than_window" in (out / "terminal_values.md").read_text()
