"""What a trained critic says about the terminations stored in its run's replay.

For every stored segment that ends in a termination (a whole trajectory unless
``replay.save_every`` split it), the critic (ensemble mean, main discount,
return units) is read at the last transition ``Q(s_{n-2}, a_{n-2})``, whose TD target is just the
scaled reward (nothing to bootstrap). The window fed to the encoder is the trajectory's last
``max_seq_len + 1`` tokens. Trajectories are grouped by whether they fit in one training window:
with AMAGO's window placement (``replay.window_placement=inside``) the termination of a longer
trajectory is in a training window ``max_seq_len`` times less often than its other transitions,
and the critic may never learn it (CartPole section of benchmarks/RESULTS.md).

    python benchmarks/learning/terminal_values.py benchmarks/learning/results/cartpole_ff/seed_0

Prints a markdown table; ``--out`` also writes ``terminal_values.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torchrl.modules import set_recurrent_mode

from amago_rl.data import SequenceReplay, window_length
from amago_rl.objectives.policy_actions import buffer_actions_for_critic

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from adaptation_traces import load_trained  # noqa: E402


@torch.no_grad()
def terminal_values(run_dir: Path) -> dict[str, Any]:
    """Critic values vs targets at the terminal transitions of ``run_dir``'s replay."""
    cfg, agent, epoch = load_trained(run_dir)
    loss = agent.loss.eval()
    w = window_length(cfg.model.max_seq_len)
    groups: dict[str, list[tuple[float, float]]] = {"fits_window": [], "longer_than_window": []}
    with tempfile.TemporaryDirectory() as tmp:  # loading must not touch the run's own files
        shutil.copytree(run_dir / "replay", Path(tmp) / "replay")
        replay = SequenceReplay(
            cfg.replay.capacity,
            cfg.model.max_seq_len,
            1,
            scratch_dir=Path(tmp) / "replay",
            window_placement=cfg.replay.window_placement,
        )
        if not replay.load():
            raise FileNotFoundError(f"{run_dir / 'replay'} holds no saved replay.")
        storage = replay.buffer.storage
        for sid in replay.sampler.segment_ids:
            index = replay.sampler.segment_index(sid)
            n = index.numel()
            if n < 2 or not bool(storage[index[n - 2]]["next", "terminated"].any()):
                continue
            window = storage[index[max(0, n - w) :]].unsqueeze(0).clone()  # [1, <= w]
            with set_recurrent_mode(True):
                loss.encoder(window)
            state = window["state_embedding"][:, -2:-1]  # [1, 1, D]
            action = window["action"][:, -2:-1].float().unsqueeze(-2)  # [1, 1, 1, A]
            action = buffer_actions_for_critic(
                action, loss.kind, loss.soften_buffer_actions, *loss._prob_bounds()
            )
            q = loss._values(loss._critic_at(state, action))  # [1, 1, C, G]
            q = loss._to_return_units(q.mean(-2))[..., -1]
            target = loss.reward_multiplier * float(window["next", "reward"][0, -2])
            group = "fits_window" if n <= w else "longer_than_window"
            groups[group].append((float(q), target))
    out: dict[str, Any] = {"run_dir": str(run_dir), "epoch": epoch, "window_tokens": w}
    for name, rows in groups.items():
        if rows:
            q = torch.tensor([r[0] for r in rows])
            t = torch.tensor([r[1] for r in rows])
            out[name] = {
                "terminations": len(rows),
                "q_mean": float(q.mean()),
                "q_median": float(q.median()),
                "target_mean": float(t.mean()),
                "abs_error_mean": float((q - t).abs().mean()),
            }
        else:
            out[name] = {"terminations": 0}
    return out


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| run | epoch | trajectories | terminations | Q mean | Q median | target mean | mean abs error |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for name in ("fits_window", "longer_than_window"):
            g = r[name]
            if not g["terminations"]:
                lines.append(f"| {r['run_dir']} | {r['epoch']} | {name} | 0 | | | | |")
                continue
            lines.append(
                f"| {r['run_dir']} | {r['epoch']} | {name} (window {r['window_tokens']}) | "
                f"{g['terminations']} | {g['q_mean']:.2f} | {g['q_median']:.2f} | "
                f"{g['target_mean']:.2f} | {g['abs_error_mean']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories (seed_N)")
    parser.add_argument("--out", type=Path, default=None, help="write terminal_values.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [terminal_values(run_dir) for run_dir in args.run_dirs]
    print(to_markdown(rows), end="")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "terminal_values.json").write_text(json.dumps(rows, indent=2))
        (args.out / "terminal_values.md").write_text(to_markdown(rows))
    return rows


if __name__ == "__main__":
    main()
