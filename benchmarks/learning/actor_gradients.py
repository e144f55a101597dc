"""Which actor-loss term drives the policy? Gradient sizes of the DPG and filtered-BC terms.

AMAGO's actor loss is ``-online_coeff * Q_norm(s, a~pi) - offline_coeff * f(A) log pi(a_t|s_t)``
(``Q_norm``: PopArt-normalised critic value). The two terms scale differently: the DPG gradient
shrinks as ``1 / popart_sigma`` (a large value scale, e.g. values that differ a lot between the
tasks of a multi-task problem), while the BC gradient on the action mean grows as ``1 / std**2`` of
the policy. This script loads a finished run's latest checkpoint (from a copy, with its replay),
draws ``--batches`` replay batches and reports, per batch, the gradient norm of each term (with
its coefficient) on the actor head's parameters and on the policy's location (mean) outputs, their
cosine similarity, the PopArt sigma, the policy's mean std and the filter's accept rate.

    python benchmarks/learning/actor_gradients.py benchmarks/learning/results/hcv_ff_k3x50_oracle/seed_0

Prints a table and the means; ``--json`` writes them too. Continuous (Tanh-Gaussian) actors only.
Used for the Half-Cheetah-Vel diagnosis in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

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
    "popart_sigma",
    "policy_std",
    "filter_accept_rate",
)


def _term(
    loss: AMAGOLoss, batch: torch.Tensor, online: float, offline: float
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Gradients of the actor loss with the given coefficients: on the head's parameters (flat)
    and on the policy's location outputs (``[B, L, G, A]``), and the loss diagnostics."""
    saved = loss.online_coeff, loss.offline_coeff
    loss.online_coeff, loss.offline_coeff = online, offline
    head = loss.actor_head
    captured: dict[str, torch.Tensor] = {}
    original = head.params_from_state

    def capture(state: torch.Tensor) -> torch.Tensor:
        params = original(state)
        if params.requires_grad and "params" not in captured:  # the online actor, not the target
            params.retain_grad()
            captured["params"] = params
        return params

    head.params_from_state = capture  # type: ignore[method-assign]
    try:
        loss.zero_grad(set_to_none=True)
        out = loss(batch.clone())
        out["loss_actor"].backward()
    finally:
        head.params_from_state = original  # type: ignore[method-assign]
        loss.online_coeff, loss.offline_coeff = saved
    grads = [
        p.grad.flatten() for p in loss.actor_head_params.values(True, True) if p.grad is not None
    ]
    flat = torch.cat(grads) if grads else torch.zeros(1)
    params = captured["params"]
    loc_grad = params.grad[..., : head.action_dim]
    diag = {
        k: float(out[k].max()) for k in ("popart_sigma", "filter_accept_rate") if k in out.keys()
    }
    std = params.detach()[..., head.action_dim :]
    diag["policy_std"] = float(std.mean())
    return flat.detach().clone(), loc_grad.detach().clone(), diag


def measure(
    run_dir: Path,
    batches: int = 8,
    work: Path = Path("/tmp/actor_gradients"),
    online: float | None = None,
    offline: float | None = None,
) -> dict:
    """Per-batch rows and their means for the run's latest checkpoint. ``online`` / ``offline``:
    the coefficients to measure the terms at (default: the run's own; both must be > 0, e.g. to
    see the BC term a run trained without it would have had)."""
    trainer = copy_run_trainer(run_dir, work)
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
        rows = []
        for _ in range(batches):
            batch = trainer.replay.sample()
            g_dpg, l_dpg, diag = _term(loss, batch, online, 0.0)
            g_bc, l_bc, diag_bc = _term(loss, batch, 0.0, offline)
            cosine = torch.nn.functional.cosine_similarity(g_dpg, g_bc, dim=0)
            rows.append(
                {
                    "grad_dpg": float(g_dpg.norm()),
                    "grad_bc": float(g_bc.norm()),
                    "loc_grad_dpg": float(l_dpg.norm()),
                    "loc_grad_bc": float(l_bc.norm()),
                    "cosine": float(cosine),
                    "popart_sigma": diag.get("popart_sigma", float("nan")),
                    "policy_std": diag["policy_std"],
                    "filter_accept_rate": diag_bc.get("filter_accept_rate", float("nan")),
                }
            )
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in FIELDS}
        return {
            "run_dir": str(run_dir),
            "epoch": trainer.epoch,
            "coefficients": {"online": online, "offline": offline},
            "rows": rows,
            "mean": mean,
        }
    finally:
        trainer.close()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/actor_gradients"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--online", type=float, default=None, help="DPG coefficient (run's own)")
    parser.add_argument("--offline", type=float, default=None, help="BC coefficient (run's own)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = measure(args.run_dir, args.batches, args.work, args.online, args.offline)
    print(f"{args.run_dir} (epoch {result['epoch']}, coefficients {result['coefficients']})")
    print(" ".join(f"{k:>18}" for k in FIELDS))
    for row in [*result["rows"], result["mean"]]:
        print(" ".join(f"{row[k]:18.4g}" for k in FIELDS))
    print(
        f"ratio BC / DPG (head parameters): {result['mean']['grad_bc'] / result['mean']['grad_dpg']:.3g}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
