"""Base class of trajectory encoders: ``[tstep_embedding, time_idx, is_init] -> state_embedding``.

Two modes, following TorchRL's recurrent-mode convention (``torchrl.modules.set_recurrent_mode``):

* **Sequence mode** (``recurrent_mode`` True, used by losses): the input TensorDict has batch
  shape ``[*B, L]`` (time last); one causal pass over the window. Memory starts empty at the first
  step of the window and is reset inside the window wherever ``is_init`` is True. An optional
  ``mask`` entry (``[*B, L, 1]`` bool, False on padding) keeps padded steps from influencing real ones.
* **Rollout mode** (``recurrent_mode`` False, the default, used by collectors): one step per call,
  input batch shape ``[*N]`` (one row per env, ``[]`` for a single env). The module keeps a per-env
  memory (KV cache or hidden state) as plain tensors, neither parameters nor buffers, so weight
  syncing and ``state_dict`` never touch it and it is never written into the TensorDict. Rows whose
  ``is_init`` is True are reset before the step.

Subclasses implement :meth:`forward_sequence`, :meth:`init_memory`, :meth:`reset_memory_rows` and
:meth:`forward_step`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.modules import recurrent_mode as _global_recurrent_mode

from amago_rl import keys
from amago_rl.errors import check_last_dim, require_entry


class TrajEncoder(TensorDictModuleBase):
    """Common plumbing for trajectory encoders.

    Args:
        in_dim: size of the timestep embedding ``D_in``.
        out_dim: size of the produced state embedding ``D_out``.
        max_seq_len: the longest context the encoder is meant to see (rollout memory window).
        tstep_key, time_key, is_init_key, mask_key, out_key: TensorDict keys.
        default_recurrent_mode: mode used when no ``set_recurrent_mode`` context is active.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        max_seq_len: int,
        *,
        tstep_key: NestedKey = keys.TSTEP_EMBEDDING,
        time_key: NestedKey = keys.TIME_IDX,
        is_init_key: NestedKey = keys.IS_INIT,
        mask_key: NestedKey = keys.MASK,
        out_key: NestedKey = keys.STATE_EMBEDDING,
        default_recurrent_mode: bool = False,
    ) -> None:
        super().__init__()
        if in_dim <= 0 or out_dim <= 0 or max_seq_len <= 0:
            raise ValueError(
                f"{type(self).__name__}: in_dim, out_dim and max_seq_len must be positive, got "
                f"{in_dim}, {out_dim}, {max_seq_len}."
            )
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.max_seq_len = max_seq_len
        self.tstep_key = tstep_key
        self.time_key = time_key
        self.is_init_key = is_init_key
        self.mask_key = mask_key
        self.out_key = out_key
        self.in_keys = [tstep_key, time_key, is_init_key]
        self.out_keys = [out_key]
        self._default_recurrent_mode = default_recurrent_mode
        # Rollout memory: plain attributes (not buffers) so state_dict / weight sync skip them.
        self._memory: dict[str, Any] | None = None
        self._memory_batch: int | None = None

    # ------------------------------------------------------------------ mode
    @property
    def recurrent_mode(self) -> bool:
        """True: sequence mode (``[*B, L]`` windows). False: rollout mode (one step per call)."""
        mode = _global_recurrent_mode()
        return self._default_recurrent_mode if mode is None else bool(mode)

    @property
    def is_stateful(self) -> bool:
        """Whether the encoder carries memory across rollout steps (False for memory-free encoders)."""
        return True

    # ------------------------------------------------------------------ forward
    def _get(self, td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        return require_entry(td, key, type(self).__name__)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        x = self._get(tensordict, self.tstep_key)
        check_last_dim(x, self.in_dim, self.tstep_key, type(self).__name__)
        time_idx = self._get(tensordict, self.time_key)
        is_init = self._get(tensordict, self.is_init_key)
        batch = tensordict.batch_size
        if self.recurrent_mode:
            if len(batch) < 1:
                raise ValueError(
                    f"{type(self).__name__}: sequence mode needs a TensorDict with a time dimension "
                    f"(batch shape [*B, L]); got batch shape {tuple(batch)}."
                )
            length = batch[-1]
            n = math.prod(batch[:-1])
            mask = tensordict.get(self.mask_key, None)
            mask = (
                torch.ones(n, length, dtype=torch.bool, device=x.device)
                if mask is None
                else mask.reshape(n, length).bool()
            )
            out = self.forward_sequence(
                x.reshape(n, length, self.in_dim),
                time_idx.reshape(n, length).long(),
                is_init.reshape(n, length).bool(),
                mask,
            )
        else:
            n = math.prod(batch)
            x_flat = x.reshape(n, self.in_dim)
            init = is_init.reshape(n).bool()
            self._ensure_memory(n, x_flat)
            if init.any():
                self.reset_memory_rows(self._memory, init)
            out = self.forward_step(x_flat, time_idx.reshape(n).long(), self._memory)
        tensordict.set(self.out_key, out.reshape(*batch, self.out_dim))
        return tensordict

    def _ensure_memory(self, n: int, like: torch.Tensor) -> None:
        if self._memory is None or self._memory_batch != n:
            self._memory = self.init_memory(n, like.device, like.dtype)
            self._memory_batch = n

    def reset_memory(self) -> None:
        """Drop all rollout memory (the next rollout step starts every env from scratch)."""
        self._memory = None
        self._memory_batch = None

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def forward_sequence(
        self,
        x: torch.Tensor,
        time_idx: torch.Tensor,
        is_init: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Sequence pass. ``x [B, L, D_in]``, ``time_idx [B, L]`` int64, ``is_init [B, L]`` bool,
        ``mask [B, L]`` bool (False on padding) -> ``[B, L, D_out]``."""

    @abstractmethod
    def init_memory(self, n: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """Fresh rollout memory for ``n`` envs."""

    @abstractmethod
    def reset_memory_rows(self, memory: dict[str, Any], rows: torch.Tensor) -> None:
        """Reset, in place, the memory of the envs where ``rows [N]`` (bool) is True."""

    @abstractmethod
    def forward_step(
        self, x: torch.Tensor, time_idx: torch.Tensor, memory: dict[str, Any]
    ) -> torch.Tensor:
        """One rollout step. ``x [N, D_in]``, ``time_idx [N]`` -> ``[N, D_out]``; updates ``memory``
        in place (stored tensors must be detached from autograd)."""
