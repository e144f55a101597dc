"""The reference optimiser: AdamW with a linear learning-rate warm-up, then a constant rate
(optionally a linear decay to a final rate, which the reference does not have).

Reference: AMAGO_REFERENCE.md §2.7 (``lr 1e-4``, ``weight_decay 1e-3``, 500 warm-up steps;
gradient clipping at norm 1.0 is done by the training loop, not here).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def unique_parameters(*sources: nn.Module | Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Trainable parameters of several losses / modules, each once (losses that share an encoder
    list its parameters twice), in first-seen order."""
    seen: set[int] = set()
    out: list[nn.Parameter] = []
    for src in sources:
        params = src.parameters() if isinstance(src, nn.Module) else src
        for p in params:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def make_optimizer(
    *losses: nn.Module,
    lr: float = 1e-4,
    weight_decay: float = 1e-3,
    warmup_steps: int = 500,
    betas: tuple[float, float] = (0.9, 0.999),
    fused: bool | None = None,
    final_lr: float | None = None,
    decay_steps: int | None = None,
) -> tuple[torch.optim.AdamW, LambdaLR]:
    """AdamW over the trainable parameters of one or more losses, plus its warm-up schedule.

    The learning rate rises linearly from 0 (``lr * step / warmup_steps``) and stays at ``lr`` from
    ``warmup_steps`` on; call ``scheduler.step()`` after every ``optimizer.step()``. With
    ``final_lr`` and ``decay_steps``, it then falls linearly from ``lr`` at ``warmup_steps`` to
    ``final_lr`` at step ``decay_steps`` and stays there (late-training stability: the greedy
    action of a still-moving critic chatters between near-equal actions).

    ``fused=None`` picks torch's fused AdamW kernel when every parameter is on a CPU or CUDA
    device (about 3x faster than the default per-tensor loop on CPU: 8 ms instead of 24 ms per
    step for the 3.5 M-parameter default agent; same update rule).

    Returns:
        ``(optimizer, scheduler)``.
    """
    if not losses:
        raise ValueError("make_optimizer: pass at least one loss (or module) to optimise.")
    if warmup_steps < 0:
        raise ValueError(f"make_optimizer: warmup_steps must be >= 0, got {warmup_steps}.")
    if (final_lr is None) != (decay_steps is None):
        raise ValueError(
            "make_optimizer: pass final_lr and decay_steps together (or neither, for a constant "
            f"rate after the warm-up); got final_lr={final_lr}, decay_steps={decay_steps}."
        )
    if final_lr is not None and decay_steps is not None:
        if not 0 <= final_lr <= lr:
            raise ValueError(f"make_optimizer: final_lr must be in [0, lr={lr}], got {final_lr}.")
        if decay_steps <= warmup_steps:
            raise ValueError(
                f"make_optimizer: decay_steps ({decay_steps}) must exceed warmup_steps "
                f"({warmup_steps}): the decay starts after the warm-up."
            )
    params = unique_parameters(*losses)
    if not params:
        raise ValueError("make_optimizer: the given losses have no trainable parameters.")
    if fused is None:
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    optimizer = torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused
    )

    final_ratio = 1.0 if final_lr is None or lr == 0 else final_lr / lr

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        if decay_steps is None:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / (decay_steps - warmup_steps))
        return 1.0 + (final_ratio - 1.0) * progress

    return optimizer, LambdaLR(optimizer, schedule)
