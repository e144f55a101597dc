"""Which actor-loss term drives the policy? Gradient sizes of the DPG and filtered-BC terms.

AMAGO's actor loss is ``-online_coeff * Q_norm(s, a~pi) - offline_coeff * f(A) log pi(a_t|s_t)``
(``Q_norm``: PopArt-normalised critic value). The two terms scale differently: the DPG gradient
shrinks as ``1 / popart_sigma`` (a large value scale, e.g. values that differ a lot between the
tasks of a multi-task problem), while the BC gradient on the action mean grows as ``1 / std**2`` of
the policy. This script loads a finished run's latest checkpoint (from a copy, with its replay),
draws ``--batches`` replay batches and reports, per batch, the gradient norm of each term (with
its coefficient) on the actor head's parameters and on the policy's location (pre-tanh mean)
outputs, their cosine similarities, the PopArt sigma, the policy's mean std (valid tokens) and the
filter's accept rate; then the means and their standard errors.

    python benchmarks/learning/actor_gradients.py benchmarks/learning/results/hcv_ff_k3x50_oracle/seed_0

Prints a table and the means; ``--json`` writes them too. Continuous (Tanh-Gaussian) actors only.
Used for the Half-Cheetah-Vel diagnosis in benchmarks/RESULTS.md.
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
from tensordict import TensorDictBase

from amago_rl.objectives import AMAGOLoss

# Run as a file, not a package: make the sibling modules importable also when this file is loaded
# by path (tests use importlib), where sys.path[0] is not this directory.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from actor_refit import copy_run_trainer  # noqa: E402

FIELDS = (
    "grad_dpg",
    "grad_bc",
    "loc_grad_dpg",
    "loc_grad_bc",
    "cosine",
    "loc_cosine",
    "popart_sigma",
    "policy_std",
    "filter_accept_rate",
)


def _term(
    loss: AMAGOLoss, batch: TensorDictBase, online: float, offline: float
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Gradients of the actor loss with the given coefficients: on the head's parameters (flat,
    zeros where a parameter got none) and on the policy's location outputs (``[B, L, G, A]``,
    the online actor's), and diagnostics. Running statistics that a training-mode forward moves
    (PopArt's, input normalisation's) are put back afterwards."""
    saved = loss.online_coeff, loss.offline_coeff
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    loss.online_coeff, loss.offline_coeff = online, offline
    head = loss.actor_head
    captured: dict[str, torch.Tensor] = {}

    def capture(module: torch.nn.Module, args: Any, out: TensorDictBase) -> None:
        params = out.get(head.out_key)
        if params.requires_grad and "params" not in captured:  # the online actor, not the target
            params.retain_grad()
            captured["params"] = params

    hook = head.register_forward_hook(capture)
    try:
        loss.zero_grad(set_to_none=True)
        out = loss(batch.clone())
        out["loss_actor"].backward()
    finally:
        hook.remove()
        loss.online_coeff, loss.offline_coeff = saved
        loss.load_state_dict(state)
    flat = torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
            for p in loss.actor_head_params.values(True, True)
        ]
    )
    params = captured["params"]
    loc_grad = params.grad[..., : head.action_dim]
    diag = {
        k: float(out[k].max()) for k in ("popart_sigma", "filter_accept_rate") if k in out.keys()
    }
    mask = batch.get(loss.tensor_keys.mask).reshape(*params.shape[:2], 1, 1).bool()
    std = params.detach()[..., head.action_dim :]  # [B, L, G, A], bounded to [std_min, std_max]
    diag["policy_std"] = float(std.masked_select(mask).mean())
    return flat.detach().clone(), loc_grad.detach().clone(), diag


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def measure(
    run_dir: Path,
    batches: int = 8,
    work: Path | None = None,
    online: float | None = None,
    offline: float | None = None,
    seed: int = 0,
) -> dict:
    """Per-batch rows and their means for the run's latest checkpoint. ``online`` / ``offline``:
    the coefficients to measure the terms at (default: the run's own; both must be > 0, e.g. to
    see the BC term a run trained without it would have had). ``work``: where the run is copied
    (default: a fresh temporary folder, removed afterwards). Both terms of a batch see the same
    random draws (``seed`` sets them), as in training, where they share one forward pass."""
    tmp = None if work is not None else tempfile.mkdtemp(prefix="actor_gradients_")
    trainer = copy_run_trainer(run_dir, work if work is not None else Path(tmp) / "run")
    try:
        loss = trainer.agent.loss
        if loss.actor_head.kind != "continuous":
            raise ValueError(
                f"actor_gradients: {run_dir} has a {loss.actor_head.kind} actor; only continuous "
                "(Tanh-Gaussian) actors are supported."
            )
        loss.train()
        online = loss.online_coeff if online is None else online
        offline = loss.offline_coeff if offline is None else offline
        if online <= 0 or offline <= 0:
            raise ValueError(
                f"actor_gradients: both coefficients must be > 0 to compare the terms, got online "
                f"{online}, offline {offline}; pass --online / --offline for a run trained "
                "without one of them."
            )
        torch.manual_seed(seed)
        rows = []
        for _ in range(batches):
            batch = trainer.replay.sample()
            rng = torch.get_rng_state()
            g_dpg, l_dpg, diag = _term(loss, batch, online, 0.0)
            torch.set_rng_state(rng)
            g_bc, l_bc, diag_bc = _term(loss, batch, 0.0, offline)
            rows.append(
                {
                    "grad_dpg": float(g_dpg.norm()),
                    "grad_bc": float(g_bc.norm()),
                    "loc_grad_dpg": float(l_dpg.norm()),
                    "loc_grad_bc": float(l_bc.norm()),
                    "cosine": _cosine(g_dpg, g_bc),
                    "loc_cosine": _cosine(l_dpg, l_bc),
                    "popart_sigma": diag.get("popart_sigma", float("nan")),
                    "policy_std": diag["policy_std"],
                    "filter_accept_rate": diag_bc.get("filter_accept_rate", float("nan")),
                }
            )
        n = len(rows)
        mean = {k: sum(r[k] for r in rows) / n for k in FIELDS}
        sem = {
            k: (sum((r[k] - mean[k]) ** 2 for r in rows) / max(n - 1, 1) / n) ** 0.5 for k in FIELDS
        }
        return {
            "run_dir": str(run_dir),
            "epoch": trainer.epoch,
            "seed": seed,
            "coefficients": {"online": online, "offline": offline},
            "rows": rows,
            "mean": mean,
            "sem": sem,
        }
    finally:
        trainer.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--work", type=Path, default=None, help="copy of the run (temporary)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--online", type=float, default=None, help="DPG coefficient (run's own)")
    parser.add_argument("--offline", type=float, default=None, help="BC coefficient (run's own)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = measure(args.run_dir, args.batches, args.work, args.online, args.offline, args.seed)
    print(f"{args.run_dir} (epoch {result['epoch']}, coefficients {result['coefficients']})")
    print(" ".join(f"{k:>18}" for k in FIELDS))
    for row in [*result["rows"], result["mean"]]:
        print(" ".join(f"{row[k]:18.4g}" for k in FIELDS))
    mean = result["mean"]
    print(
        f"ratio BC / DPG: head parameters {mean['grad_bc'] / mean['grad_dpg']:.3g}, "
        f"policy means {mean['loc_grad_bc'] / mean['loc_grad_dpg']:.3g}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
