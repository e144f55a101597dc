"""GRU and LSTM trajectory encoders (AMAGO's ``GRUTrajEncoder``, registered there as "rnn").

``nn.GRU`` / ``nn.LSTM`` (batch first) -> ``Linear(d_hidden -> d_output)`` -> ``LayerNorm``.

* Sequence mode: the hidden state is zero at the first step of every window (AMAGO trains without
  burn-in or stored states) and is zeroed again wherever ``is_init`` is True inside the window.
  Windows without inner resets take one plain RNN call. With inner resets, two exact strategies:
  ``"packed"`` cuts rows into segments at the resets and runs them as one ``PackedSequence`` call
  (one cuDNN kernel on GPU); ``"chunked"`` runs one fused call per stretch between distinct reset
  steps of the batch, zeroing the state of the rows that reset. On CPU the packed backward pass
  is several times slower than a plain one (measured ~3-4x for 24x128 windows), while chunked costs
  about the same as a plain call, so ``"auto"`` picks packed on CUDA and chunked elsewhere.
* Rollout mode: one hidden state per env, carried across calls for as long as the trial lasts
  (not limited to ``max_seq_len``), zeroed on rows where ``is_init`` is True.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any, Literal

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
        inner_resets: Literal["auto", "packed", "chunked"] = "auto",
        **key_kwargs: Any,
    ) -> None:
        super().__init__(in_dim, d_output, max_seq_len, **key_kwargs)
        if inner_resets not in ("auto", "packed", "chunked"):
            raise ValueError(
                f"{type(self).__name__}: inner_resets must be 'auto', 'packed' or 'chunked', got "
                f"{inner_resets!r}."
            )
        if d_hidden <= 0 or n_layers <= 0:
            raise ValueError(
                f"{type(self).__name__}: d_hidden and n_layers must be positive, got "
                f"{d_hidden} and {n_layers}."
            )
        self.d_hidden = d_hidden
        self.n_layers = n_layers
        self.inner_resets = inner_resets
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
        if not has_inner_resets(is_init):
            hidden, _ = self.rnn(x)
        elif self.inner_resets == "packed" or (self.inner_resets == "auto" and x.is_cuda):
            hidden = self._run_packed(x, is_init)
        else:
            hidden = self._run_chunked(x, is_init)
        return self.out_norm(self.out(hidden))

    def _run_packed(self, x: torch.Tensor, is_init: torch.Tensor) -> torch.Tensor:
        """One ``PackedSequence`` call over the segments between resets: ``[B, L, D] -> [B, L, H]``."""
        batch, length, _ = x.shape
        seg = split_at_resets(is_init)
        packed = pack_padded_sequence(
            to_segments(x, seg), seg.lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_out, _ = self.rnn(packed)
        padded, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=seg.max_len)
        return from_segments(padded, seg, batch, length)

    def _run_chunked(self, x: torch.Tensor, is_init: torch.Tensor) -> torch.Tensor:
        """One fused call per stretch between the distinct reset steps of the batch (at most
        ``L`` calls, usually a few): ``[B, L, D] -> [B, L, H]``."""
        reset_steps = torch.nonzero(is_init[:, 1:].any(0)).flatten().add(1).tolist()
        bounds = [0, *reset_steps, x.shape[1]]
        state: torch.Tensor | tuple[torch.Tensor, ...] | None = None
        outs = []
        for start, end in pairwise(bounds):
            if state is not None:
                keep = (~is_init[:, start]).to(x.dtype)[None, :, None]
                state = tuple(s * keep for s in state) if isinstance(state, tuple) else state * keep
            out, state = self.rnn(x[:, start:end], state)
            outs.append(out)
        return torch.cat(outs, dim=1)

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
        inner_resets: how sequence mode handles ``is_init`` after a window's first step:
            ``"packed"``, ``"chunked"`` or ``"auto"`` (packed on CUDA, chunked otherwise); all
            give the same outputs, see the module docstring.
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
