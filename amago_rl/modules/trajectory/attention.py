"""Causal multi-head self-attention for the Transformer trajectory encoder.

One module serves both modes:

* sequence mode: ``[B, L, D]`` windows; who may attend to whom is given by
  :func:`sequence_attention_mask` (causal, same trial, sliding window of ``max_seq_len`` tokens);
* rollout mode: one token per env attends over its KV cache, a ring buffer of the last
  ``max_seq_len`` tokens. Positions are baked into the cached keys (additive embedding before the
  first layer, or RoPE applied before caching), so the slot order of the ring buffer is irrelevant:
  softmax attention is invariant to permuting the keys.

Kernels: ``torch.nn.functional.scaled_dot_product_attention`` (SDPA) everywhere; the optional
``flash_attn`` package (bf16) for sequence windows on CUDA that need no mask beyond causal + window.
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from amago_rl.errors import require_cuda_package
from amago_rl.modules.trajectory.position import apply_rotary
from amago_rl.modules.trajectory.sigma_reparam import SigmaReparamLinear

ATTENTION_KINDS = ("auto", "sdpa", "flash")
FLASH_INSTALL = "flash-attn"
FLASH_ALTERNATIVE = (
    "attention='sdpa' or 'auto' (the default: flash-attn when installed and on CUDA)"
)
RopeCosSin = tuple[torch.Tensor, torch.Tensor] | None


class StepCache(NamedTuple):
    """One layer's view of the rollout KV cache for the current step (all views of one tensor).

    rows: ``[N * 2 * H * S, dh]`` the layer's cache flattened to rows (write target).
    keys, values: ``[N, H, span, dh]`` the first ``span`` ring-buffer slots.
    write_idx: ``[N * 2 * H]`` the rows receiving this step's k, v (slot ``count % S`` per env).
    key_mask: ``[N, 1, 1, span]`` bool (valid slots per env), or None when all are valid.
    """

    rows: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    write_idx: torch.Tensor
    key_mask: torch.Tensor | None


def flash_attn_available() -> bool:
    """Whether the optional ``flash_attn`` package can be imported."""
    return importlib.util.find_spec("flash_attn") is not None


def check_attention_kind(attention: str) -> None:
    """Raise for an unknown kernel name, or for ``flash`` without the ``flash_attn`` package."""
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}.")
    if attention == "flash" and not flash_attn_available():
        raise require_cuda_package(
            "flash-attn",
            "TransformerTrajEncoder(attention='flash')",
            install=FLASH_INSTALL,
            alternative=FLASH_ALTERNATIVE,
        )


def sequence_attention_mask(
    is_init: torch.Tensor, mask: torch.Tensor, window: int
) -> torch.Tensor | None:
    """Boolean attention mask for a batch of windows, or ``None`` when plain causal attention is exact.

    Token ``t`` attends to ``s`` iff ``s <= t``, ``t - s < window``, both lie in the same trial
    segment (segment id = cumsum of ``is_init`` along time, so rows may reset at different steps)
    and ``s`` is not padding. Every token attends to itself, so no row is empty (no NaN).

    Args:
        is_init: ``[B, L]`` bool.
        mask: ``[B, L]`` bool, False on padding.
        window: the sliding-window length (``max_seq_len``), the same as the rollout KV cache.

    Returns:
        ``[B, 1, L, L]`` bool (True = may attend), or ``None`` if no reset inside the window, no
        padding and ``L <= window`` (then ``is_causal=True`` gives the same result, faster).
    """
    length = is_init.shape[-1]
    if length <= window and not bool(is_init[:, 1:].any()) and bool(mask.all()):
        return None
    pos = torch.arange(length, device=is_init.device)
    lag = pos[:, None] - pos[None, :]  # [L(query), L(key)]
    allowed = (lag >= 0) & (lag < window)
    segment = is_init.long().cumsum(dim=-1)
    allowed = allowed & (segment[:, :, None] == segment[:, None, :]) & mask[:, None, :]
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=is_init.device)
    return allowed.unsqueeze(1)


class SelfAttention(nn.Module):
    """``qkv -> (RoPE) -> attention -> per-head scale -> out`` projection.

    Args:
        d_model: token size ``D``.
        n_heads: number of heads ``H``; head dim ``dh = D / H``.
        dropout_attn: dropout on attention weights (training only).
        sigma_reparam: use :class:`SigmaReparamLinear` projections instead of ``nn.Linear``.
        head_scaling: multiply each head's output by a learnable scale (init 1).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        dropout_attn: float,
        sigma_reparam: bool,
        head_scaling: bool,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        inner = n_heads * self.head_dim
        linear = SigmaReparamLinear if sigma_reparam else nn.Linear
        self.qkv = linear(d_model, 3 * inner, bias=False)
        self.out = linear(inner, d_model)
        self.dropout_attn = dropout_attn
        self.head_scale = nn.Parameter(torch.ones(n_heads, 1, 1)) if head_scaling else None

    def _finish(self, o: torch.Tensor) -> torch.Tensor:
        """``o [*, H, L, dh] -> [*, L, H dh] -> out projection``."""
        if self.head_scale is not None:
            o = o * self.head_scale
        o = o.transpose(-3, -2)
        return self.out(o.reshape(*o.shape[:-2], -1))

    def forward(
        self,
        h: torch.Tensor,
        rope: RopeCosSin,
        attn_mask: torch.Tensor | None,
        window: int,
        use_flash: bool = False,
    ) -> torch.Tensor:
        """Sequence mode: ``h [B, L, D]``; ``rope`` cos/sin ``[B, 1, L, dh]`` or None;
        ``attn_mask`` from :func:`sequence_attention_mask` -> ``[B, L, D]``."""
        b, length, _ = h.shape
        qkv = self.qkv(h).view(b, length, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, L, dh]
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        p = self.dropout_attn if self.training else 0.0
        if use_flash and attn_mask is None:
            o = _flash_attention(q, k, v, p, window)
        else:
            o = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=p, is_causal=attn_mask is None
            )
        return self._finish(o)

    def forward_step(self, h: torch.Tensor, rope: RopeCosSin, cache: StepCache) -> torch.Tensor:
        """Rollout mode: ``h [N, D]`` -> ``[N, D]``; writes this step's k, v into ``cache.rows``.
        ``rope``: cos/sin ``[N, 1, dh]`` or None."""
        n = h.shape[0]
        q, k, v = self.qkv(h).view(n, 3, self.n_heads, self.head_dim).unbind(1)  # [N, H, dh]
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        new_kv = torch.stack((k, v), dim=1)  # [N, 2, H, dh]
        if new_kv.requires_grad:  # the cache is rollout state, never part of an autograd graph
            new_kv = new_kv.detach()
        # One indexed copy writes k and v of every env and head (into the `keys` / `values` views).
        cache.rows.index_copy_(0, cache.write_idx, new_kv.view(-1, self.head_dim))
        o = F.scaled_dot_product_attention(
            q.unsqueeze(-2),
            cache.keys,
            cache.values,
            attn_mask=cache.key_mask,
            dropout_p=self.dropout_attn if self.training else 0.0,
        )  # [N, H, 1, dh]
        if self.head_scale is not None:
            o = o * self.head_scale
        return self.out(o.reshape(n, -1))


def _flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float, window: int
) -> torch.Tensor:
    """flash-attn 2 kernel (bf16/fp16 only): causal with a left window of ``window - 1`` tokens.
    ``q, k, v [B, H, L, dh]`` -> ``[B, H, L, dh]`` in the input dtype."""
    from flash_attn import flash_attn_func

    dtype = q.dtype
    half = dtype if dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    q, k, v = (t.transpose(1, 2).to(half) for t in (q, k, v))  # flash layout [B, L, H, dh]
    o = flash_attn_func(q, k, v, dropout_p=dropout_p, causal=True, window_size=(window - 1, 0))
    return o.transpose(1, 2).to(dtype)
