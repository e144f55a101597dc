"""Position information for the Transformer, always from the absolute ``time_idx`` (steps since the
trial started), never from the position inside a window: a token gets the same embedding whether it
is seen in a training window, in a rollout KV cache or in a longer history.

* ``fixed``: sinusoidal, dims ``0::2 = sin(t omega_i)``, ``1::2 = cos(t omega_i)``, ``omega_i = exp(-ln(10000) 2i / D)``.
* ``learned``: ``nn.Embedding(max_time_idx, D)``.
* ``rope``: rotary embedding of queries and keys (half-split layout, base 10000); nothing is added
  to the token embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

POS_EMB_KINDS = ("fixed", "learned", "rope")
_ALIASES = {"learnable": "learned", "sinusoidal": "fixed", "rotary": "rope"}
_DEFAULT_BASE = 10000.0


def canonical_pos_emb(kind: str) -> str:
    """Validate a position-embedding name (accepting AMAGO's ``learnable``) and return its canonical form."""
    name = _ALIASES.get(kind, kind)
    if name not in POS_EMB_KINDS:
        raise ValueError(f"pos_emb must be one of {POS_EMB_KINDS}, got {kind!r}.")
    return name


def _frequencies(dim: int, base: float) -> torch.Tensor:
    """``omega_i = base^(-2i / dim)`` for ``i = 0 .. dim/2 - 1``, shape ``[dim / 2]``."""
    return torch.exp(-math.log(base) * torch.arange(0, dim, 2, dtype=torch.float64) / dim).float()


class SinusoidalPositionEmbedding(nn.Module):
    """Fixed sinusoidal embedding of ``time_idx [*] -> [*, D]`` (interleaved sin / cos)."""

    def __init__(self, dim: int, base: float = _DEFAULT_BASE) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"the sinusoidal position embedding needs an even d_model, got {dim}.")
        self.dim = dim
        # Non-persistent: a deterministic function of dim, so it moves with .to() but stays out of checkpoints.
        self.register_buffer("omega", _frequencies(dim, base), persistent=False)

    def forward(self, time_idx: torch.Tensor) -> torch.Tensor:
        angles = time_idx.unsqueeze(-1) * self.omega  # [*, D/2], float (type promotion)
        # stack(..., -1).flatten puts sin at even and cos at odd dims.
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


class LearnedPositionEmbedding(nn.Module):
    """Learned embedding table ``time_idx [*] -> [*, D]`` for ``0 <= time_idx < max_time_idx``."""

    def __init__(self, dim: int, max_time_idx: int | None) -> None:
        super().__init__()
        if max_time_idx is None or max_time_idx <= 0:
            raise ValueError(
                "pos_emb='learned' needs max_time_idx (a positive int: one more than the largest "
                f"time_idx the encoder will see: the env's max episode/trial length + 1, since stored "
                f"trajectories end with the final observation's token); got {max_time_idx!r}."
            )
        self.max_time_idx = max_time_idx
        self.table = nn.Embedding(max_time_idx, dim)

    def forward(self, time_idx: torch.Tensor) -> torch.Tensor:
        if time_idx.numel():
            low, high = (int(t) for t in torch.aminmax(time_idx))
            if low < 0 or high >= self.max_time_idx:
                raise ValueError(
                    f"time_idx {high if high >= self.max_time_idx else low} is outside the learned "
                    f"position table [0, {self.max_time_idx}); raise max_time_idx (>= the longest "
                    "trial) or use pos_emb='fixed' / 'rope'."
                )
        return self.table(time_idx)


class RotaryPositionEmbedding(nn.Module):
    """Rotary embedding (RoPE) over the head dimension ``dh`` with the half-split layout:
    ``rope(x) = x cos + rotate_half(x) sin`` with ``rotate_half([x1, x2]) = [-x2, x1]``."""

    def __init__(self, head_dim: int, base: float = _DEFAULT_BASE) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(
                f"pos_emb='rope' needs an even head dim (d_model / n_heads), got {head_dim}."
            )
        self.head_dim = head_dim
        self.register_buffer("inv_freq", _frequencies(head_dim, base), persistent=False)

    def cos_sin(self, time_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``time_idx [*] -> (cos, sin)``, each ``[*, dh]`` (the half-dim angles repeated twice)."""
        angles = time_idx.unsqueeze(-1) * self.inv_freq
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [..., dh]`` by the angles behind ``cos``/``sin`` (broadcastable to ``x``)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin
