"""Memory-free trajectory encoder (AMAGO's ``FFTrajEncoder``): each step is embedded on its own.

``Linear(D_in -> D)`` -> act -> dropout -> ``n_layers`` x :class:`FFBlock` -> ``Linear(D -> D)``
-> ``LayerNorm`` -> dropout. The baseline that shows how much an agent gains from memory.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from amago_rl.modules.activation import make_activation
from amago_rl.modules.trajectory.base import TrajEncoder


class FFBlock(nn.Module):
    """Residual feed-forward block ``x + drop(act(ff2(drop(act(ff1(x))))))``, ``[..., D] -> [..., D]``."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.ff1(x)))
        return x + self.dropout(self.act(self.ff2(h)))


class FFTrajEncoder(TrajEncoder):
    """Per-step MLP trajectory encoder without memory.

    Args:
        in_dim: timestep embedding size ``D_in``.
        max_seq_len: longest training window (unused by the computation; kept for a uniform API).
        d_model: width ``D`` (also the output size). n_layers: number of :class:`FFBlock`
            (hidden width ``4 * d_model``). dropout: dropout probability. activation: name.
        **key_kwargs: TensorDict keys and ``default_recurrent_mode``, see :class:`TrajEncoder`.
    """

    def __init__(
        self,
        in_dim: int,
        max_seq_len: int,
        *,
        d_model: int = 256,
        n_layers: int = 1,
        dropout: float = 0.0,
        activation: str = "leaky_relu",
        **key_kwargs: Any,
    ) -> None:
        super().__init__(in_dim, d_model, max_seq_len, **key_kwargs)
        self.inp = nn.Linear(in_dim, d_model)
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            FFBlock(d_model, 4 * d_model, dropout, activation) for _ in range(n_layers)
        )
        self.last = nn.Linear(d_model, d_model)
        self.out_norm = nn.LayerNorm(d_model)

    @property
    def is_stateful(self) -> bool:
        return False

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D_in] -> [..., D]``, independently for every step."""
        h = self.dropout(self.act(self.inp(x)))
        for block in self.blocks:
            h = block(h)
        return self.dropout(self.out_norm(self.last(h)))

    def forward_sequence(
        self,
        x: torch.Tensor,
        time_idx: torch.Tensor,
        is_init: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``x [B, L, D_in] -> [B, L, D]``."""
        return self._embed(x)

    def init_memory(self, n: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        return {}

    def reset_memory_rows(self, memory: dict[str, Any], rows: torch.Tensor) -> None:
        return None

    def forward_step(
        self, x: torch.Tensor, time_idx: torch.Tensor, memory: dict[str, Any]
    ) -> torch.Tensor:
        """``x [N, D_in] -> [N, D]``."""
        return self._embed(x)
