"""TransformerTrajEncoder: rollout (KV cache) == sequence mode, masks, positions, sigma-reparam, errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from tensordict import TensorDict
from torchrl.modules import set_recurrent_mode

from amago_rl.modules.trajectory import TransformerTrajEncoder
from amago_rl.modules.trajectory import attention as attention_mod
from amago_rl.modules.trajectory.attention import sequence_attention_mask
from amago_rl.modules.trajectory.position import (
    RotaryPositionEmbedding,
    SinusoidalPositionEmbedding,
    apply_rotary,
)
from amago_rl.modules.trajectory.sigma_reparam import SigmaReparamLinear

D_IN = 5
SMALL = dict(d_model=32, n_heads=4, d_ff=64, n_layers=2)


def make_encoder(max_seq_len: int = 32, **kwargs) -> TransformerTrajEncoder:
    cfg = {**SMALL, "max_time_idx": 64, **kwargs}
    return TransformerTrajEncoder(D_IN, max_seq_len, **cfg).eval()


def make_history(batch: int, length: int, resets: dict[int, list[int]]) -> TensorDict:
    """Random tokens; row b starts a new trial at step 0 and at every step in resets[b]."""
    is_init = torch.zeros(batch, length, dtype=torch.bool)
    is_init[:, 0] = True
    for row, steps in resets.items():
        is_init[row, steps] = True
    time_idx = torch.zeros(batch, length, dtype=torch.long)
    for t in range(1, length):
        time_idx[:, t] = torch.where(is_init[:, t], 0, time_idx[:, t - 1] + 1)
    return TensorDict(
        {
            "tstep_embedding": torch.randn(batch, length, D_IN),
            "time_idx": time_idx.unsqueeze(-1),
            "is_init": is_init.unsqueeze(-1),
        },
        batch_size=[batch, length],
    )


def run_sequence(enc: TransformerTrajEncoder, td: TensorDict) -> torch.Tensor:
    with set_recurrent_mode(True):
        return enc(td.clone())["state_embedding"]


def run_rollout(enc: TransformerTrajEncoder, td: TensorDict) -> torch.Tensor:
    enc.reset_memory()
    steps = [enc(td[:, t].clone())["state_embedding"] for t in range(td.shape[1])]
    return torch.stack(steps, dim=1)


# ---------------------------------------------------------------- rollout == sequence
@pytest.mark.parametrize("pos_emb", ["fixed", "learned", "rope"])
@pytest.mark.parametrize("max_seq_len", [32, 6])
@torch.no_grad()
def test_rollout_equals_sequence(pos_emb: str, max_seq_len: int) -> None:
    # 32 > history (plain causal within trials); 6 < history (sliding window, ring buffer wraps).
    enc = make_encoder(max_seq_len, pos_emb=pos_emb)
    td = make_history(3, 20, {0: [7], 1: [12, 15]})
    seq = run_sequence(enc, td)
    roll = run_rollout(enc, td)
    assert seq.shape == (3, 20, 32)
    torch.testing.assert_close(roll, seq, atol=1e-5, rtol=0)


@torch.no_grad()
def test_rollout_equals_sequence_plain_variant() -> None:
    enc = make_encoder(5, sigma_reparam=False, normformer_norms=False, head_scaling=False)
    assert isinstance(enc.blocks[0].ln2, torch.nn.Identity)
    assert isinstance(enc.blocks[0].ff1, torch.nn.Linear)
    td = make_history(2, 14, {1: [4]})
    torch.testing.assert_close(run_rollout(enc, td), run_sequence(enc, td), atol=1e-5, rtol=0)


@pytest.mark.parametrize("pos_emb", ["fixed", "rope"])
@torch.no_grad()
def test_one_layer_rollout_equals_pass_over_last_window(pos_emb: str) -> None:
    # One layer: cached keys depend on their own token only, so the rollout output at the last step
    # equals a fresh pass over just the last max_seq_len tokens carrying their absolute time_idx.
    window = 8
    enc = make_encoder(window, pos_emb=pos_emb, n_layers=1)
    td = make_history(2, 23, {})
    roll = run_rollout(enc, td)
    last = run_sequence(enc, td[:, -window:])
    torch.testing.assert_close(roll[:, -1], last[:, -1], atol=1e-5, rtol=0)
    # The window really is binding: a pass over the whole history gives something else.
    full_causal = make_encoder(64, pos_emb=pos_emb, n_layers=1)
    full_causal.load_state_dict(enc.state_dict())
    assert (run_sequence(full_causal, td)[:, -1] - roll[:, -1]).abs().max() > 1e-3


@torch.no_grad()
def test_rollout_unbatched_env_and_memory_handling() -> None:
    enc = make_encoder(4)
    keys_before = set(enc.state_dict())
    td = make_history(1, 6, {})
    outs = [enc(td[0, t].clone())["state_embedding"] for t in range(6)]  # batch_size []
    assert outs[0].shape == (32,)
    torch.testing.assert_close(torch.stack(outs), run_sequence(enc, td)[0], atol=1e-5, rtol=0)
    memory = enc._memory
    assert memory["k"].shape == (2, 1, 4, 4, 8) and memory["v"].shape == (2, 1, 4, 4, 8)
    assert memory["count"].tolist() == [6]
    state = enc.state_dict()
    assert set(state) == keys_before  # the memory is neither a parameter nor a buffer
    memory_ptrs = {memory["kv"].data_ptr(), memory["count"].data_ptr()}
    assert not memory_ptrs & {t.data_ptr() for t in state.values()}
    enc(make_history(3, 1, {})[:, 0])  # a new number of envs reallocates the memory
    assert enc._memory["k"].shape[1] == 3 and enc._memory["count"].tolist() == [1, 1, 1]
    enc.reset_memory_rows(enc._memory, torch.tensor([False, True, False]))
    assert enc._memory["count"].tolist() == [1, 0, 1]


# ---------------------------------------------------------------- masks
def test_sequence_attention_mask_hand_computed() -> None:
    is_init = torch.tensor([[True, False, True, False, False]])
    mask = torch.tensor([[True, True, True, True, False]])
    got = sequence_attention_mask(is_init, mask, window=2)[0, 0].int()
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],  # new trial at step 2
            [0, 0, 1, 1, 0],
            [0, 0, 0, 1, 1],  # window 2 drops step 2; the padded step still sees itself
        ]
    )
    assert torch.equal(got, expected)
    no_reset = torch.tensor([[True, False, False]])
    assert sequence_attention_mask(no_reset, torch.ones(1, 3, dtype=torch.bool), 3) is None
    assert sequence_attention_mask(no_reset, torch.ones(1, 3, dtype=torch.bool), 2) is not None


@torch.no_grad()
def test_causality() -> None:
    enc = make_encoder(6)
    td = make_history(2, 12, {0: [5]})
    base = run_sequence(enc, td)
    for t in (0, 4, 9):
        changed = td.clone()
        changed["tstep_embedding"][:, t + 1 :] += torch.randn(2, 12 - t - 1, D_IN)
        out = run_sequence(enc, changed)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-6, rtol=0)
        assert (out[:, t + 1] - base[:, t + 1]).abs().max() > 1e-4


@torch.no_grad()
def test_padding_is_ignored() -> None:
    enc = make_encoder(16)
    td = make_history(2, 10, {1: [3]})
    td["mask"] = torch.ones(2, 10, 1, dtype=torch.bool)
    td["mask"][0, 7:] = False  # right padding
    td["mask"][1, :2] = False  # left padding
    base = run_sequence(enc, td)
    assert torch.isfinite(base).all()
    changed = td.clone()
    changed["tstep_embedding"][~td["mask"].squeeze(-1)] = 100.0
    out = run_sequence(enc, changed)
    real = td["mask"].squeeze(-1)
    torch.testing.assert_close(out[real], base[real], atol=1e-6, rtol=0)
    # The unpadded part alone gives the same outputs.
    torch.testing.assert_close(run_sequence(enc, td[0:1, :7])[0], base[0, :7], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- positions
def test_sinusoidal_values() -> None:
    emb = SinusoidalPositionEmbedding(4)(torch.tensor([1, 3]))
    w1 = math.exp(-math.log(10000.0) * 2 / 4)
    expected = [[math.sin(t), math.cos(t), math.sin(t * w1), math.cos(t * w1)] for t in (1, 3)]
    torch.testing.assert_close(emb, torch.tensor(expected), atol=1e-6, rtol=0)


def test_rope_values_and_relative_property() -> None:
    rope = RotaryPositionEmbedding(2)
    cos, sin = rope.cos_sin(torch.tensor([0.7]))
    torch.testing.assert_close(
        apply_rotary(torch.tensor([[1.0, 0.0]]), cos, sin),
        torch.tensor([[math.cos(0.7), math.sin(0.7)]]),
    )
    rope8 = RotaryPositionEmbedding(8)
    q, k = torch.randn(8), torch.randn(8)

    def score(tq: int, tk: int) -> torch.Tensor:
        cq, sq = rope8.cos_sin(torch.tensor(tq))
        ck, sk = rope8.cos_sin(torch.tensor(tk))
        return torch.dot(apply_rotary(q, cq, sq), apply_rotary(k, ck, sk))

    torch.testing.assert_close(score(5, 2), score(103, 100), atol=1e-4, rtol=0)


def test_learned_position_errors() -> None:
    with pytest.raises(ValueError, match="max_time_idx"):
        TransformerTrajEncoder(D_IN, 8, **SMALL, pos_emb="learned")
    enc = make_encoder(8, pos_emb="learned", max_time_idx=5)
    td = make_history(1, 7, {})
    with pytest.raises(ValueError, match=r"time_idx 6 .*\[0, 5\)"), set_recurrent_mode(True):
        enc(td)


# ---------------------------------------------------------------- sigma-reparam
def test_sigma_reparam_init_and_power_iteration_only_in_training() -> None:
    layer = SigmaReparamLinear(6, 4)
    torch.testing.assert_close(
        torch.linalg.matrix_norm(layer.effective_weight().detach(), ord=2), torch.tensor(1.0)
    )
    x = torch.randn(3, 6)
    with torch.no_grad():
        layer.weight.add_(0.3 * torch.randn(4, 6))  # u, v are now stale
    u0, v0 = layer.u.clone(), layer.v.clone()
    layer.eval()
    layer(x)
    assert torch.equal(layer.u, u0) and torch.equal(layer.v, v0)
    layer.train()
    w = layer.weight.detach()
    u1 = w @ v0 / (w @ v0).norm()
    v1 = w.t() @ u1 / (w.t() @ u1).norm()
    y = layer(x)
    torch.testing.assert_close(layer.u, u1)
    torch.testing.assert_close(layer.v, v1)
    sigma = torch.dot(u1, w @ v1)
    torch.testing.assert_close(y, x @ (w / sigma).t() + layer.bias, atol=1e-6, rtol=0)
    # A second training forward before backward must not break autograd (u, v change in place).
    (y.sum() + layer(x).sum()).backward()
    assert layer.weight.grad is not None and layer.gamma.grad is not None


def test_sigma_reparam_output_scaling_path_matches_weight_path() -> None:
    layer = SigmaReparamLinear(16, 8).eval()
    x = torch.randn(3, 16)
    step = layer(x)  # 2-D, few rows: output-scaling path
    seq = layer(x.unsqueeze(0))[0]  # 3-D: rescaled-weight path
    torch.testing.assert_close(step, seq, atol=1e-6, rtol=0)
    step.sum().backward()
    assert layer.weight.grad is not None and layer.gamma.grad is not None


# ---------------------------------------------------------------- errors, dropout, attention
def test_input_errors_name_key_and_shape() -> None:
    enc = make_encoder()
    td = make_history(2, 3, {})
    td["tstep_embedding"] = torch.randn(2, 3, D_IN + 1)
    with pytest.raises(ValueError, match=r"tstep_embedding.*size 5"), set_recurrent_mode(True):
        enc(td)
    del td["time_idx"]
    td["tstep_embedding"] = torch.randn(2, 3, D_IN)
    with pytest.raises(KeyError, match="time_idx"):
        enc(td[:, 0])
    with pytest.raises(ValueError, match="n_heads"):
        TransformerTrajEncoder(D_IN, 8, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="pos_emb"):
        TransformerTrajEncoder(D_IN, 8, pos_emb="alibi")


def test_dropout_only_in_training_and_eval_leaves_buffers_alone() -> None:
    enc = make_encoder(8, dropout_ff=0.5, dropout_emb=0.5, dropout_attn=0.5)
    td = make_history(2, 6, {})
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    torch.testing.assert_close(run_sequence(enc, td), run_sequence(enc, td), atol=0, rtol=0)
    run_rollout(enc, td)
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    enc.train()
    assert (run_sequence(enc, td) - run_sequence(enc, td)).abs().max() > 1e-3


def test_sequence_mode_backward_reaches_every_parameter() -> None:
    enc = make_encoder(4).train()
    run_sequence(enc, make_history(2, 9, {0: [3]})).square().mean().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_flash_requires_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attention_mod, "flash_attn_available", lambda: False)
    with pytest.raises(ImportError) as info:
        make_encoder(attention="flash")
    message = str(info.value)
    # The working recipe (a plain `pip install -e ".[flash]"` fails without torch in the build env).
    assert "pip install flash-attn --no-build-isolation" in message
    assert "CUDA build of torch" in message and "nvcc" in message
    assert "attention='sdpa'" in message  # the CPU alternative
    with pytest.raises(ValueError, match="attention"):
        make_encoder(attention="xformers")


@torch.no_grad()
def test_flash_falls_back_to_sdpa_on_cpu_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attention_mod, "flash_attn_available", lambda: True)
    monkeypatch.setattr(
        "amago_rl.modules.trajectory.transformer.flash_attn_available", lambda: True
    )
    flash = make_encoder(8, attention="flash")
    sdpa = make_encoder(8, attention="sdpa")
    sdpa.load_state_dict(flash.state_dict())
    td = make_history(2, 6, {})
    with pytest.warns(UserWarning) as record:
        out = run_sequence(flash, td)
    flash_warnings = [w for w in record if "attention='flash'" in str(w.message)]
    assert len(flash_warnings) == 1
    message = str(flash_warnings[0].message)
    assert "flash-attn kernels need CUDA tensors and the inputs are on cpu" in message
    assert "falls back to torch's scaled_dot_product_attention" in message
    assert "Set attention='sdpa'" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_sequence(flash, td)
    torch.testing.assert_close(out, run_sequence(sdpa, td), atol=0, rtol=0)
    auto = make_encoder(8, attention="auto")  # "auto" picks SDPA on CPU silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_sequence(auto, td)
