"""Mamba trajectory encoder (Gu & Dao, 2023), behind the optional ``mamba-ssm`` package.

``Linear(D_in -> D)`` -> ``n_layers`` x ``(x + Mamba(LayerNorm(x)))`` -> ``LayerNorm``.

* Sequence mode: ``mamba_ssm.Mamba.forward`` over the window. ``Mamba`` (v1) cannot restart its
  state mid-sequence, so a window with ``is_init`` True after its first step is cut into
  segments at the resets; the segments run as one right-padded batch (the scan is causal, so the
  padding after a segment never reaches it) and are scattered back.
* Rollout mode: ``Mamba.step`` with the per-layer ``(conv_state, ssm_state)`` from
  ``Mamba.allocate_inference_cache``, zeroed on rows where ``is_init`` is True.

``mamba-ssm`` has CUDA kernels only (selective scan, causal conv, Triton step), so this encoder
needs a CUDA device for training and for rollouts; on CPU use ``trajectory=gru`` or
``trajectory=transformer``. Install on top of a CUDA torch, with nvcc available:
``pip install causal-conv1d mamba-ssm --no-build-isolation`` (``pip install -e ".[mamba]"`` alone
fails: pip builds mamba-ssm in an isolated env without torch). Source builds of mamba-ssm newer
than 2.3.2.post1 compile Mamba-1's kernel only with ``MAMBA_KEEP_CUDA_BUILD=TRUE``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from amago_rl.errors import CUDARequiredError, require_cuda_package
from amago_rl.modules.trajectory.base import TrajEncoder
from amago_rl.modules.trajectory.segments import (
    from_segments,
    has_inner_resets,
    split_at_resets,
    to_segments,
)

MAMBA_INSTALL = "causal-conv1d mamba-ssm"
CPU_ALTERNATIVE = "trajectory=gru or trajectory=transformer (MambaTrajEncoder has no CPU path)"


def require_cuda(device: torch.device | None = None) -> None:
    """Raise :class:`CUDARequiredError` without a CUDA device, or for ``device`` not on CUDA:
    ``mamba_ssm`` has no CPU kernels."""
    if device is None and torch.cuda.is_available():
        return
    if device is not None and device.type == "cuda":
        return
    where = "no CUDA device is available" if device is None else f"its inputs are on {device}"
    raise CUDARequiredError(
        f"MambaTrajEncoder runs mamba_ssm's CUDA kernels, but {where}. Run on a CUDA GPU "
        f"(device=cuda, a CUDA build of torch), or use {CPU_ALTERNATIVE}."
    )


class _MambaBlock(nn.Module):
    """Pre-norm residual Mamba block, ``[B, L, D] -> [B, L, D]``."""

    def __init__(self, mamba: nn.Module, d_model: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mamba = mamba

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mamba(self.norm(x))

    def step(
        self, x: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token ``x [N, 1, D]``; ``Mamba.step`` updates the states in place and returns them."""
        y, conv_state, ssm_state = self.mamba.step(self.norm(x), conv_state, ssm_state)
        return x + y, conv_state, ssm_state


class MambaTrajEncoder(TrajEncoder):
    """Stack of residual Mamba blocks.

    Args:
        in_dim: timestep embedding size ``D_in``.
        max_seq_len: longest training window (passed to ``allocate_inference_cache``; the
            recurrent state itself has no context limit).
        d_model: width ``D`` (also the output size). n_layers: number of Mamba blocks.
        d_state, d_conv, expand: ``mamba_ssm.Mamba`` arguments.
        **key_kwargs: TensorDict keys and ``default_recurrent_mode``, see :class:`TrajEncoder`.

    Rollout memory: ``{"conv": [n_layers x [N, expand * D, d_conv]],
    "ssm": [n_layers x [N, expand * D, d_state]]}``.

    Raises:
        ImportError: when ``mamba-ssm`` is not installed (the message gives the install recipe).
        CUDARequiredError: without a CUDA device (at construction), or for inputs not on CUDA.
    """

    def __init__(
        self,
        in_dim: int,
        max_seq_len: int,
        *,
        d_model: int = 256,
        n_layers: int = 3,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        **key_kwargs: Any,
    ) -> None:
        try:
            from mamba_ssm import Mamba
        except ImportError as err:
            raise require_cuda_package(
                "mamba-ssm", "MambaTrajEncoder", install=MAMBA_INSTALL, alternative=CPU_ALTERNATIVE
            ) from err
        require_cuda()
        super().__init__(in_dim, d_model, max_seq_len, **key_kwargs)
        self.inp = nn.Linear(in_dim, d_model)
        self.blocks = nn.ModuleList(
            _MambaBlock(
                Mamba(d_model=d_model, d_state=d_state, d_conv=d_conv, expand=expand), d_model
            )
            for _ in range(n_layers)
        )
        self.out_norm = nn.LayerNorm(d_model)

    def _run_blocks(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return h

    def forward_sequence(
        self,
        x: torch.Tensor,
        time_idx: torch.Tensor,
        is_init: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``x [B, L, D_in] -> [B, L, D]``; state zero at the window start and at every ``is_init``."""
        require_cuda(x.device)
        batch, length, _ = x.shape
        h = self.inp(x)
        if has_inner_resets(is_init):
            seg = split_at_resets(is_init)
            h = from_segments(self._run_blocks(to_segments(h, seg)), seg, batch, length)
        else:
            h = self._run_blocks(h)
        return self.out_norm(h)

    def init_memory(self, n: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        conv, ssm = [], []
        for block in self.blocks:
            conv_state, ssm_state = block.mamba.allocate_inference_cache(
                n, max_seqlen=self.max_seq_len, dtype=dtype
            )
            conv.append(conv_state.to(device))
            ssm.append(ssm_state.to(device))
        return {"conv": conv, "ssm": ssm}

    def reset_memory_rows(self, memory: dict[str, Any], rows: torch.Tensor) -> None:
        for state in (*memory["conv"], *memory["ssm"]):
            state[rows] = 0.0

    def forward_step(
        self, x: torch.Tensor, time_idx: torch.Tensor, memory: dict[str, Any]
    ) -> torch.Tensor:
        """``x [N, D_in] -> [N, D]``; advances every layer's conv and SSM state."""
        require_cuda(x.device)
        h = self.inp(x).unsqueeze(1)
        for i, block in enumerate(self.blocks):
            h, conv_state, ssm_state = block.step(h, memory["conv"][i], memory["ssm"][i])
            memory["conv"][i] = conv_state.detach()
            memory["ssm"][i] = ssm_state.detach()
        return self.out_norm(h[:, 0])
