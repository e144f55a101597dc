"""AMAGO's Transformer trajectory encoder: pre-norm blocks with NormFormer extra norms, per-head
scaling and sigma-reparam projections, positions from the absolute ``time_idx``.

Sequence mode runs one causal pass over ``[B, L]`` windows; rollout mode advances every env by one
step using a per-env KV cache holding the last ``max_seq_len`` tokens (a ring buffer). Both see the
same sliding window, so rollout outputs equal sequence-mode outputs over the same history.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from amago_rl.modules.trajectory.attention import (
    RopeCosSin,
    SelfAttention,
    StepCache,
    check_attention_kind,
    flash_attn_available,
    sequence_attention_mask,
)
from amago_rl.modules.trajectory.base import TrajEncoder
from amago_rl.modules.trajectory.position import (
    LearnedPositionEmbedding,
    RotaryPositionEmbedding,
    SinusoidalPositionEmbedding,
    canonical_pos_emb,
)
from amago_rl.modules.trajectory.sigma_reparam import SigmaReparamLinear

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "leaky_relu": F.leaky_relu,
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
}


class TransformerBlock(nn.Module):
    """``x = x + LN2(attn(LN1 x))``; ``x = x + dropout(ff2(LN4(act(ff1(LN3 x)))))``.

    LN2 and LN4 are the NormFormer extras (identity when ``normformer_norms`` is False).
    Shapes: ``[B, L, D]`` in sequence mode, ``[N, D]`` in rollout mode.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        dropout_ff: float,
        dropout_attn: float,
        sigma_reparam: bool,
        normformer_norms: bool,
        head_scaling: bool,
        activation: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        super().__init__()
        linear = SigmaReparamLinear if sigma_reparam else nn.Linear
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(
            d_model,
            n_heads,
            dropout_attn=dropout_attn,
            sigma_reparam=sigma_reparam,
            head_scaling=head_scaling,
        )
        self.ln2 = nn.LayerNorm(d_model) if normformer_norms else nn.Identity()
        self.ln3 = nn.LayerNorm(d_model)
        self.ff1 = linear(d_model, d_ff)
        self.ln4 = nn.LayerNorm(d_ff) if normformer_norms else nn.Identity()
        self.ff2 = linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout_ff)
        self.activation = activation

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ff2(self.ln4(self.activation(self.ff1(self.ln3(x)))))
        if self.training:  # skip the no-op module call on the rollout hot path
            h = self.dropout(h)
        return x + h

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeCosSin,
        attn_mask: torch.Tensor | None,
        window: int,
        use_flash: bool = False,
    ) -> torch.Tensor:
        x = x + self.ln2(self.attn(self.ln1(x), rope, attn_mask, window, use_flash))
        return self._feed_forward(x)

    def forward_step(
        self,
        x: torch.Tensor,
        rope: RopeCosSin,
        cache: StepCache,
    ) -> torch.Tensor:
        a = self.attn.forward_step(self.ln1(x), rope, cache)
        return self._feed_forward(x + self.ln2(a))


class TransformerTrajEncoder(TrajEncoder):
    """Transformer over timestep embeddings: ``tstep_embedding [*B, L, D_in] -> state_embedding [*B, L, D]``.

    Architecture (AMAGO): ``Linear(D_in -> D)`` + position embedding of ``time_idx`` -> dropout ->
    ``n_layers`` x :class:`TransformerBlock` -> LayerNorm. Token ``t`` attends to the tokens of its
    own trial among the last ``max_seq_len`` (itself included), in both modes.

    Args:
        in_dim: timestep-embedding size ``D_in``.
        max_seq_len: attention window in tokens (= rollout KV-cache length).
        d_model, n_heads, d_ff, n_layers: sizes (head dim ``d_model / n_heads``).
        dropout_ff, dropout_emb, dropout_attn: dropout after the feed-forward, after the input
            embedding, on attention weights.
        pos_emb: ``"fixed"`` (sinusoidal), ``"learned"`` (needs ``max_time_idx``) or ``"rope"``.
        max_time_idx: size of the learned position table (largest ``time_idx`` + 1).
        sigma_reparam: sigma-reparam projections in the blocks (else ``nn.Linear``).
        normformer_norms: the extra LayerNorms after attention and inside the feed-forward.
        head_scaling: learnable per-head output scale.
        activation: ``"leaky_relu"``, ``"relu"``, ``"gelu"`` or ``"silu"``.
        attention: ``"auto"`` (flash-attn when installed and on CUDA, else SDPA), ``"sdpa"`` or
            ``"flash"`` (raises ``ImportError`` without the ``flash-attn`` package, which needs a
            CUDA torch: ``pip install flash-attn --no-build-isolation``; on non-CUDA inputs it
            falls back to SDPA with one warning). flash-attn computes in bf16 and only serves
            sequence windows without resets or padding (others use SDPA); rollout steps always
            use SDPA.
        **key_kwargs: TensorDict keys and ``default_recurrent_mode`` of :class:`TrajEncoder`.
    """

    def __init__(
        self,
        in_dim: int,
        max_seq_len: int,
        *,
        d_model: int = 256,
        n_heads: int = 8,
        d_ff: int = 1024,
        n_layers: int = 3,
        dropout_ff: float = 0.05,
        dropout_emb: float = 0.05,
        dropout_attn: float = 0.0,
        pos_emb: str = "fixed",
        max_time_idx: int | None = None,
        sigma_reparam: bool = True,
        normformer_norms: bool = True,
        head_scaling: bool = True,
        activation: str = "leaky_relu",
        attention: str = "auto",
        **key_kwargs: Any,
    ) -> None:
        super().__init__(in_dim, d_model, max_seq_len, **key_kwargs)
        if n_heads <= 0 or d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be a positive multiple of n_heads ({n_heads})."
            )
        if n_layers <= 0 or d_ff <= 0:
            raise ValueError(f"n_layers and d_ff must be positive, got {n_layers} and {d_ff}.")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}."
            )
        check_attention_kind(attention)
        self.pos_emb = canonical_pos_emb(pos_emb)
        self.attention = attention
        self.n_heads, self.n_layers = n_heads, n_layers
        self.head_dim = d_model // n_heads
        self.in_proj = nn.Linear(in_dim, d_model)
        self.position: nn.Module | None = None
        self.rope: RotaryPositionEmbedding | None = None
        if self.pos_emb == "fixed":
            self.position = SinusoidalPositionEmbedding(d_model)
        elif self.pos_emb == "learned":
            self.position = LearnedPositionEmbedding(d_model, max_time_idx)
        else:
            self.rope = RotaryPositionEmbedding(self.head_dim)
        self.dropout_emb = nn.Dropout(dropout_emb)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model,
                n_heads,
                d_ff,
                dropout_ff=dropout_ff,
                dropout_attn=dropout_attn,
                sigma_reparam=sigma_reparam,
                normformer_norms=normformer_norms,
                head_scaling=head_scaling,
                activation=ACTIVATIONS[activation],
            )
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self._warned_flash_cpu = False

    def _embed(self, x: torch.Tensor, time_idx: torch.Tensor) -> torch.Tensor:
        h = self.in_proj(x)
        if self.position is not None:
            h = h + self.position(time_idx)
        return self.dropout_emb(h) if self.training else h

    def _use_flash(self, device: torch.device) -> bool:
        if self.attention == "sdpa" or not flash_attn_available():
            return False
        if device.type == "cuda":
            return True
        if self.attention == "flash" and not self._warned_flash_cpu:
            warnings.warn(
                "TransformerTrajEncoder(attention='flash'): flash-attn kernels need CUDA tensors "
                f"and the inputs are on {device.type}, so attention falls back to torch's "
                "scaled_dot_product_attention, exactly as attention='sdpa'. Set attention='sdpa' (or "
                "'auto') to silence this warning.",
                stacklevel=3,
            )
            self._warned_flash_cpu = True
        return False

    # ------------------------------------------------------------------ sequence mode
    def forward_sequence(
        self,
        x: torch.Tensor,
        time_idx: torch.Tensor,
        is_init: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``x [B, L, D_in]``, ``time_idx [B, L]``, ``is_init [B, L]``, ``mask [B, L]`` -> ``[B, L, D]``."""
        use_flash = self._use_flash(x.device)
        h = self._embed(x, time_idx)
        rope = None
        if self.rope is not None:
            cos, sin = self.rope.cos_sin(time_idx)
            rope = (cos.unsqueeze(1), sin.unsqueeze(1))  # [B, 1, L, dh], broadcast over heads
        attn_mask = sequence_attention_mask(is_init, mask, self.max_seq_len)
        for block in self.blocks:
            h = block(h, rope, attn_mask, self.max_seq_len, use_flash)
        return self.norm(h)

    # ------------------------------------------------------------------ rollout mode
    def init_memory(self, n: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """Rollout memory for ``n`` envs.

        ``kv [n_layers, N, 2, H, max_seq_len, dh]`` holds keys and values in one tensor so a step
        writes both with a single indexed copy; ``k`` and ``v`` are views of it
        (``[n_layers, N, H, max_seq_len, dh]``). ``count [N]``: tokens seen since each env's last
        reset; the next token goes to ring-buffer slot ``count % max_seq_len``. ``kv_rows``: ``kv``
        viewed as ``[n_layers, N * 2 * H * max_seq_len, dh]``; ``head_rows [N, 2H]``: the row offset
        of each (env, k/v, head) in it.
        """
        window, heads = self.max_seq_len, self.n_heads
        kv = torch.zeros(
            (self.n_layers, n, 2, heads, window, self.head_dim), device=device, dtype=dtype
        )
        head_rows = torch.arange(n * 2 * heads, device=device).view(n, 2 * heads) * window
        return {
            "kv": kv,
            "kv_rows": kv.view(self.n_layers, -1, self.head_dim),
            "k": kv[:, :, 0],
            "v": kv[:, :, 1],
            "count": torch.zeros(n, device=device, dtype=torch.long),
            "head_rows": head_rows,
        }

    def reset_memory_rows(self, memory: dict[str, Any], rows: torch.Tensor) -> None:
        """Forget the history of envs ``rows [N]`` (bool): stale slots are masked by ``count``."""
        memory["count"].masked_fill_(rows, 0)

    def forward_step(
        self, x: torch.Tensor, time_idx: torch.Tensor, memory: dict[str, Any]
    ) -> torch.Tensor:
        """``x [N, D_in]``, ``time_idx [N]`` -> ``[N, D]``; one token per env, O(context) work."""
        n, window = x.shape[0], self.max_seq_len
        count = memory["count"]
        write_idx = (memory["head_rows"] + (count % window).unsqueeze(1)).view(-1)
        seen = (count + 1).clamp(max=window)  # valid slots after this step's write
        low, span = torch.stack(torch.aminmax(seen)).tolist()
        # Until some env has filled its window, only the first max(seen) slots can be valid.
        key_mask = None
        if low != span:
            key_mask = torch.arange(span, device=x.device) < seen[:, None]
            key_mask = key_mask.view(n, 1, 1, span)
        h = self._embed(x, time_idx)
        rope = None
        if self.rope is not None:
            cos, sin = self.rope.cos_sin(time_idx)
            rope = (cos.unsqueeze(1), sin.unsqueeze(1))  # [N, 1, dh], broadcast over heads
        keys, values = memory["kv"][..., :span, :].unbind(2)  # [n_layers, N, H, span, dh] views
        rows = memory["kv_rows"]
        for layer, block in enumerate(self.blocks):
            cache = StepCache(rows[layer], keys[layer], values[layer], write_idx, key_mask)
            h = block.forward_step(h, rope, cache)
        count.add_(1)
        return self.norm(h)
