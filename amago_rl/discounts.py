"""The discount set AMAGO trains (AMAGO_REFERENCE.md §2.1, reference ``Multigammas``).

Every discount gets its own policy and critic output; the main ("real") discount, the one
rollouts use, is always the last. The one home of these defaults: ``config.py``, the module
builder and the losses read them from here.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Extra discounts trained next to the main one (reference ``Multigammas``).
DEFAULT_MULTIGAMMAS: tuple[float, ...] = (0.1, 0.9, 0.95, 0.97, 0.99, 0.995)
#: The main discount; always the last index of the discount dimension.
DEFAULT_GAMMA: float = 0.999


def check_gammas(gammas: Sequence[float]) -> tuple[float, ...]:
    """``gammas`` as floats; ``ValueError`` unless it is a non-empty sequence of values in [0, 1]."""
    out = tuple(float(g) for g in gammas)
    if not out or any(not 0.0 <= g <= 1.0 for g in out):
        raise ValueError(f"gammas must be a non-empty sequence of values in [0, 1], got {out}.")
    return out


def make_gammas(
    gamma: float = DEFAULT_GAMMA,
    multigammas: Sequence[float] = DEFAULT_MULTIGAMMAS,
    use_multigamma: bool = True,
) -> list[float]:
    """The discount set ``multigammas + [gamma]`` (or ``[gamma]`` alone); the main one is last."""
    return list(check_gammas([*multigammas, gamma] if use_multigamma else [gamma]))


#: ``make_gammas()``: the reference's seven discounts, 0.999 last.
DEFAULT_GAMMAS: tuple[float, ...] = tuple(make_gammas())
