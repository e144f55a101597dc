"""GRU and LSTM trajectory encoders (AMAGO's ``GRUTrajEncoder``, registered there as "rnn").

``nn.GRU`` / ``nn.LSTM`` (batch first) -> ``Linear(d_hidden -> d_output)`` -> ``LayerNorm``.

* Sequence mode: the hidden state is zero at the first step of every window (AMAGO trains without
  burn-in or stored states) and is zeroed again wherever ``is_init`` is True inside the window.
  Windows with inner resets are cut into segments that run as one packed RNN call.
* Rollout mode: one hidden state per env, carried across calls for as long as the trial lasts
  (not limited to ``max_seq_len``), zeroed on rows where ``is_init`` is True.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from amago_rl.modules.trajectory.base import TrajEncoder
from amago_rl.modules.trajectory.segments import (
    from_segments,
    has_inner_resets,
    split_at_resets,
    to_segments,
)


class _RNNTrajEncoder(TrajEncoder):
    """Shared implementation; subclasses pick the ``nn.RNNBase`` class and its state names."""

    _rnn_class: type[nn.RNNBase]
    # Names of the rollout state tensors, each [n_layers, N, d_hidden], in nn.RNNBase order.
    _state_names: tuple[str, ...]

    def __init__(
        self,
        in_dim: int,
        max_seq_len: int,
        *,
        d_hidden: int = 256,
        n_layers: int = 2,
        d_output: int = 256,
        **key_kwargs: Any,
    ) -> None:
        super().__init__(in_dim, d_output, max_seq_len, **key_kwargs)
        if d_hidden <= 0 or n_layers <= 0:
            raise ValueError(
                f"{type(self).__name__}: d_hidden and n_layers must be positive, got "
                f"{d_hidden} and {n_layers}."
            )
        self.d_hidden = d_hidden
        self.n_layers = n_layers
        self.rnn = self._rnn_class(
            input_size=in_dim, hidden_size=d_hidden, num_layers=n_layers, batch_first=True
        )
        self.out = nn.Linear(d_hidden, d_output)
        self.out_norm = nn.LayerNorm(d_output)

    def forward_sequence(
        self,
        x: torch.Tensor,
        time_idx: torch.Tensor,
        is_init: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``x [B, L, D_in]`` -> ``[B, L, d_output]``. Padding (``mask`` False) is right padding,
        so causality already keeps it out of the real steps; its outputs are finite but unused."""
        batch, length, _ = x.shape
        if not has_inner_resets(is_init):
            hidden, _ = self.rnn(x)
        else:
            seg = split_at_resets(is_init)
            packed = pack_padded_sequence(
                to_segments(x, seg), seg.lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            packed_out, _ = self.rnn(packed)
            padded, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=seg.max_len)
            hidden = from_segments(padded, seg, batch, length)
        return self.out_norm(self.out(hidden))

    def init_memory(self, n: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """Zero states ``[n_layers, n, d_hidden]`` for every name in ``_state_names``."""
        return {
            name: torch.zeros(self.n_layers, n, self.d_hidden, device=device, dtype=dtype)
            for name in self._state_names
        }

    def reset_memory_rows(self, memory: dict[str, Any], rows: torch.Tensor) -> None:
        for name in self._state_names:
            memory[name][:, rows] = 0.0

    def forward_step(
        self, x: torch.Tensor, time_idx: torch.Tensor, memory: dict[str, Any]
    ) -> torch.Tensor:
        """``x [N, D_in]`` -> ``[N, d_output]``; advances the per-env hidden state."""
        states = tuple(memory[name] for name in self._state_names)
        hidden, new_states = self.rnn(x.unsqueeze(1), states[0] if len(states) == 1 else states)
        if isinstance(new_states, torch.Tensor):
            new_states = (new_states,)
        for name, state in zip(self._state_names, new_states):
            memory[name] = state.detach()
        return self.out_norm(self.out(hidden[:, 0]))


class GRUTrajEncoder(_RNNTrajEncoder):
    """Multi-layer GRU trajectory encoder.

    Args:
        in_dim: timestep embedding size ``D_in``.
        max_seq_len: longest training window (the GRU itself has no context limit).
        d_hidden: GRU hidden size. n_layers: stacked GRU layers. d_output: output size.
        **key_kwargs: TensorDict keys and ``default_recurrent_mode``, see :class:`TrajEncoder`.

    Rollout memory: ``{"h": [n_layers, N, d_hidden]}``.
    """

    _rnn_class = nn.GRU
    _state_names = ("h",)


class LSTMTrajEncoder(_RNNTrajEncoder):
    """Multi-layer LSTM trajectory encoder; same arguments as :class:`GRUTrajEncoder`.

    Rollout memory: ``{"h": [n_layers, N, d_hidden], "c": [n_layers, N, d_hidden]}``.
    """

    _rnn_class = nn.LSTM
    _state_names = ("h", "c")
