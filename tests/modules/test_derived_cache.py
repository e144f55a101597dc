"""Cached weight-derived values (sigma-reparam scale and rescaled weight, InputNorm statistics):
bit-identical to recomputing, recomputed after every kind of weight change, never cached where
changes cannot be seen (shared memory), and not carried by pickling or deep copies."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from amago_rl.modules import clear_derived_caches
from amago_rl.modules.trajectory.sigma_reparam import SigmaReparamLinear
from amago_rl.modules.tstep.input_norm import InputNorm


def fresh_step(layer: SigmaReparamLinear, x: torch.Tensor) -> torch.Tensor:
    """The rollout-step output computed from the current weights, without any cache."""
    with torch.no_grad():
        scale = layer.gamma / torch.dot(layer.u, layer.weight @ layer.v)
        return torch.addcmul(layer.bias, F.linear(x, layer.weight), scale)


def step(layer: SigmaReparamLinear, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return layer(x)


@pytest.fixture
def layer() -> SigmaReparamLinear:
    torch.manual_seed(0)
    return SigmaReparamLinear(6, 5).eval()


X = torch.randn(3, 6)
NOISE = torch.randn(5, 6)  # sigma-reparam is invariant to scaling W, so changes add noise


def test_scale_is_computed_once_and_bit_identical(layer: SigmaReparamLinear) -> None:
    out = step(layer, X)
    assert torch.equal(out, fresh_step(layer, X))
    cached = layer._scale_cache._value
    assert cached is not None
    step(layer, X)
    assert layer._scale_cache._value is cached  # reused, not recomputed


def test_no_cache_with_grad_or_in_training(layer: SigmaReparamLinear) -> None:
    y = layer(X)  # eval mode, grad enabled: the graph must reach weight and gamma
    y.sum().backward()
    assert layer.weight.grad is not None and layer.gamma.grad is not None
    assert layer._scale_cache._key is None
    layer.train()
    step(layer, X)
    assert layer._scale_cache._key is None


def _change_by_optimizer(layer: SigmaReparamLinear) -> None:
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, fused=True)
    layer(X).pow(2).sum().backward()
    opt.step()


def _change_by_load_state_dict(layer: SigmaReparamLinear) -> None:
    other = SigmaReparamLinear(6, 5)
    with torch.no_grad():
        other.gamma.fill_(3.0)
    layer.load_state_dict(other.state_dict())


def _change_in_place(layer: SigmaReparamLinear) -> None:
    with torch.no_grad():
        layer.weight.add_(NOISE)


def _replace_parameter(layer: SigmaReparamLinear) -> None:
    layer.weight = nn.Parameter(layer.weight.detach() + NOISE)


def _assign_data(layer: SigmaReparamLinear) -> None:
    layer.weight.data = layer.weight.detach() + NOISE


def _change_gamma(layer: SigmaReparamLinear) -> None:
    with torch.no_grad():
        layer.gamma.fill_(0.5)


def _power_iteration(layer: SigmaReparamLinear) -> None:
    with torch.no_grad():
        layer.weight.data.add_(torch.randn_like(layer.weight))  # invisible to the version...
    clear_derived_caches(layer)
    step(layer, X)
    layer.train()  # ...so move u and v instead: a training forward runs a power iteration
    with torch.no_grad():
        layer(X)
    layer.eval()


@pytest.mark.parametrize(
    "change",
    [
        _change_by_optimizer,
        _change_by_load_state_dict,
        _change_in_place,
        _replace_parameter,
        _assign_data,
        _change_gamma,
        _power_iteration,
    ],
)
def test_every_weight_change_invalidates(layer: SigmaReparamLinear, change) -> None:
    before = step(layer, X)
    change(layer)
    after = step(layer, X)
    assert torch.equal(after, fresh_step(layer, X))
    assert not torch.equal(after, before)


def test_writes_through_data_need_an_explicit_clear(layer: SigmaReparamLinear) -> None:
    step(layer, X)
    layer.weight.data.add_(NOISE)  # bypasses the version counter (as TorchRL's .data.update_)
    assert not torch.equal(step(layer, X), fresh_step(layer, X))  # the documented limitation
    clear_derived_caches(layer)
    assert torch.equal(step(layer, X), fresh_step(layer, X))


def test_shared_memory_is_never_cached(layer: SigmaReparamLinear) -> None:
    layer.share_memory()  # another process could write it without any version bump
    step(layer, X)
    layer.weight.data.add_(NOISE)  # such a write, seen from this process
    assert torch.equal(step(layer, X), fresh_step(layer, X))
    assert layer._scale_cache._value is None


def test_large_input_rescaled_weight_cached_and_invalidated(layer: SigmaReparamLinear) -> None:
    x = torch.randn(2, 100, 6)  # sequence-mode input: the layer uses the rescaled weight

    def fresh() -> torch.Tensor:
        with torch.no_grad():
            scale = layer.gamma / torch.dot(layer.u, layer.weight @ layer.v)
            return F.linear(x, scale * layer.weight, layer.bias)

    assert torch.equal(step(layer, x), fresh())
    cached = layer._weight_cache._value
    step(layer, x)
    assert layer._weight_cache._value is cached
    _change_in_place(layer)
    assert torch.equal(step(layer, x), fresh())


def test_copies_start_empty_and_inference_tensors_work(layer: SigmaReparamLinear) -> None:
    step(layer, X)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert clone._scale_cache._key is None
        assert torch.equal(step(clone, X), step(layer, X))
    with torch.inference_mode():
        made = SigmaReparamLinear(6, 5).eval()  # inference tensors track no version
        assert torch.equal(made(X), fresh_step(made, X))


def test_input_norm_stats_cached_and_invalidated() -> None:
    norm = InputNorm(4)
    norm(torch.randn(50, 4) * 3 + 1)  # training: statistics updated
    norm.eval()
    x = torch.randn(7, 4)

    def fresh() -> torch.Tensor:
        std = norm.std
        out = ((x - norm.mean) / std).clamp(-norm.clip, norm.clip)
        use = (std > norm._STABLE_STD) & ~torch.isnan(out)
        return torch.where(use, out, x - torch.nan_to_num(norm.mean))

    assert torch.equal(norm(x), fresh())
    cached = norm._stats_cache._value
    norm(x)
    assert norm._stats_cache._value is cached
    norm.train()
    norm(torch.randn(50, 4) * 10)  # a training update moves the statistics
    norm.eval()
    assert torch.equal(norm(x), fresh())
    other = InputNorm(4)
    norm.load_state_dict(other.state_dict())
    assert torch.equal(norm(x), fresh())
    norm.min_std = 5.0  # a setting the statistics depend on
    assert torch.equal(norm(x), fresh())
