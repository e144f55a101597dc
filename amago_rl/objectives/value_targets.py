"""TD targets on sequences: REDQ-style ensemble reduction and n-step returns.

Reference: AMAGO_REFERENCE.md §2.1 and §2.3 step 8. Everything works on *transitions*
``t = 0..T-1`` of a window of ``L = T + 1`` tokens; transition ``t`` goes from token ``t`` to token
``t + 1`` and is valid iff both tokens are real (not padding).
"""

from __future__ import annotations

import torch


def reduce_ensemble(
    q: torch.Tensor,
    num_critics_td: int,
    mode: str,
    ensemble_dim: int = -2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reduce a critic ensemble over ``num_critics_td`` members drawn per element.

    For every element of the output, ``num_critics_td`` member indices are drawn uniformly *with
    replacement* and their values reduced by ``min`` (clipped double Q, used with the DPG term)
    or ``mean`` (AMAGO: min underestimates too much without the DPG term).

    Args:
        q: ``[..., C, G]`` (ensemble dimension at ``ensemble_dim``).
        num_critics_td: members drawn per element.
        mode: ``"min"`` or ``"mean"``.

    Returns:
        ``q`` with the ensemble dimension removed, e.g. ``[..., G]``.
    """
    if mode not in ("min", "mean"):
        raise ValueError(f"reduce_ensemble: mode must be 'min' or 'mean', got {mode!r}.")
    if num_critics_td <= 0:
        raise ValueError(f"reduce_ensemble: num_critics_td must be positive, got {num_critics_td}.")
    dim = ensemble_dim % q.dim()
    shape = list(q.shape)
    num_critics = shape[dim]
    shape[dim] = num_critics_td
    idx = torch.randint(num_critics, shape, device=q.device, generator=generator)
    picked = q.gather(dim, idx)
    return picked.amin(dim) if mode == "min" else picked.mean(dim)


def nstep_targets(
    reward: torch.Tensor,
    next_value: torch.Tensor,
    gammas: torch.Tensor,
    terminated: torch.Tensor,
    valid: torch.Tensor,
    done: torch.Tensor | None = None,
    n_step: int = 1,
) -> torch.Tensor:
    """n-step TD targets for every discount.

    ``y_t = sum_{i<k} gamma^i r_{t+i} + gamma^k (1 - term_{t+k-1}) V_{t+k-1}``, where ``V_j`` is the
    bootstrap value of the state reached by transition ``j`` and ``k <= n_step`` is the number of
    transitions taken: the sum stops *after* a ``done`` transition (terminated or truncated; only
    ``terminated`` zeroes the bootstrap, so truncation bootstraps) and *before* an invalid
    (padded) transition. ``n_step = 1`` gives ``y_t = r_t + gamma (1 - term_t) V_t``.

    Args:
        reward: ``[B, T, 1]`` rewards ``r_t`` (already scaled).
        next_value: ``[B, T, G]`` bootstrap values of the next states ``s_{t+1}``.
        gammas: ``[G]`` discounts.
        terminated: ``[B, T, 1]`` bool, transition ``t`` ended the trial in a terminal state.
        valid: ``[B, T, 1]`` bool, transition ``t`` is real (tokens ``t`` and ``t+1`` are not padding).
        done: ``[B, T, 1]`` bool, ``terminated | truncated``; defaults to ``terminated``.
        n_step: number of transitions summed before bootstrapping.

    Returns:
        ``[B, T, G]`` targets; entries at invalid transitions are 0 and must be masked.
    """
    if n_step < 1:
        raise ValueError(f"nstep_targets: n_step must be >= 1, got {n_step}.")
    if next_value.dim() != 3 or reward.shape != (*next_value.shape[:2], 1):
        raise ValueError(
            f"nstep_targets: expected reward [B, T, 1] and next_value [B, T, G], got "
            f"{tuple(reward.shape)} and {tuple(next_value.shape)}."
        )
    terminated = terminated.to(torch.bool)
    valid = valid.to(torch.bool)
    done = terminated if done is None else done.to(torch.bool) | terminated
    not_term = (~terminated).to(next_value.dtype)
    length = reward.shape[1]

    def shifted(x: torch.Tensor, i: int, fill: float | bool) -> torch.Tensor:
        # x[:, t + i] aligned at t; positions past the window get `fill`.
        if i == 0:
            return x
        pad = torch.full_like(x[:, :i], fill)
        return torch.cat([x[:, i:], pad], dim=1)[:, :length]

    target = torch.zeros_like(next_value)
    bootstrap = torch.zeros_like(next_value)
    alive = valid
    for i in range(n_step):
        step_ok = alive & shifted(valid, i, False)
        discount = gammas.pow(i)
        target = target + torch.where(step_ok, discount * shifted(reward, i, 0.0), 0.0)
        boot_i = gammas.pow(i + 1) * shifted(not_term, i, 0.0) * shifted(next_value, i, 0.0)
        bootstrap = torch.where(step_ok, boot_i, bootstrap)
        alive = step_ok & ~shifted(done, i, True)
    return target + bootstrap
