"""GRU / LSTM / FF trajectory encoders: rollout == sequence, resets, causality, padding, errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tensordict import TensorDict
from torchrl.modules import set_recurrent_mode

from amago_rl.modules.trajectory import (
    FFTrajEncoder,
    GRUTrajEncoder,
    LSTMTrajEncoder,
    TrajEncoder,
)
from amago_rl.modules.trajectory.segments import split_at_resets

D_IN = 6
MAX_SEQ_LEN = 8

RNN_SIZES = {"d_hidden": 16, "n_layers": 2, "d_output": 12}
FACTORIES: dict[str, Callable[[], TrajEncoder]] = {
    # "auto" resolves to the chunked strategy on CPU.
    "gru": lambda: GRUTrajEncoder(D_IN, MAX_SEQ_LEN, **RNN_SIZES),
    "gru_packed": lambda: GRUTrajEncoder(D_IN, MAX_SEQ_LEN, inner_resets="packed", **RNN_SIZES),
    "lstm": lambda: LSTMTrajEncoder(D_IN, MAX_SEQ_LEN, **RNN_SIZES),
    "lstm_packed": lambda: LSTMTrajEncoder(D_IN, MAX_SEQ_LEN, inner_resets="packed", **RNN_SIZES),
    "ff": lambda: FFTrajEncoder(D_IN, MAX_SEQ_LEN, d_model=12, n_layers=2),
}
RECURRENT = ["gru", "gru_packed", "lstm", "lstm_packed"]


def time_since_init(is_init: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` bool -> steps since the last reset (a window that starts mid-trial counts from 0)."""
    steps = torch.arange(is_init.shape[1]).expand_as(is_init)
    start = torch.where(is_init, steps, torch.zeros_like(steps)).cummax(1).values
    return steps - start


def seq_td(x: torch.Tensor, is_init: torch.Tensor, mask: torch.Tensor | None = None) -> TensorDict:
    b, length, _ = x.shape
    td = TensorDict(
        {
            "tstep_embedding": x,
            "time_idx": time_since_init(is_init).unsqueeze(-1),
            "is_init": is_init.unsqueeze(-1),
        },
        batch_size=[b, length],
    )
    if mask is not None:
        td["mask"] = mask.unsqueeze(-1)
    return td


def run_sequence(enc: TrajEncoder, x: torch.Tensor, is_init: torch.Tensor, mask=None):
    with set_recurrent_mode(True), torch.no_grad():
        return enc(seq_td(x, is_init, mask))["state_embedding"]


def run_rollout(enc: TrajEncoder, x: torch.Tensor, is_init: torch.Tensor) -> torch.Tensor:
    """Feed ``[B, L]`` one step at a time, as a collector does; returns ``[B, L, D_out]``."""
    enc.reset_memory()
    time_idx = time_since_init(is_init)
    outs = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            td = TensorDict(
                {
                    "tstep_embedding": x[:, t],
                    "time_idx": time_idx[:, t, None],
                    "is_init": is_init[:, t, None],
                },
                batch_size=[x.shape[0]],
            )
            outs.append(enc(td)["state_embedding"])
    return torch.stack(outs, 1)


def resets(b: int, length: int, at: dict[int, list[int]]) -> torch.Tensor:
    is_init = torch.zeros(b, length, dtype=torch.bool)
    is_init[:, 0] = True
    for row, steps in at.items():
        is_init[row, steps] = True
    return is_init


@pytest.mark.parametrize("name", list(FACTORIES))
def test_rollout_equals_sequence_over_long_history_with_resets(name: str) -> None:
    enc = FACTORIES[name]().eval()
    length = 3 * MAX_SEQ_LEN  # longer than max_seq_len: rollout state is carried all along
    x = torch.randn(4, length, D_IN)
    is_init = resets(4, length, {1: [5], 2: [5, 17], 3: [1, 2, 23]})
    seq = run_sequence(enc, x, is_init)
    roll = run_rollout(enc, x, is_init)
    assert seq.shape == roll.shape == (4, length, 12)
    torch.testing.assert_close(roll, seq, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", RECURRENT)
def test_reset_inside_window_equals_separate_window(name: str) -> None:
    enc = FACTORIES[name]().eval()
    x = torch.randn(2, 10, D_IN)
    is_init = resets(2, 10, {0: [4]})
    out = run_sequence(enc, x, is_init)
    # Steps 4.. of row 0 form a fresh trial: same as a window that starts at step 4.
    tail = run_sequence(enc, x[:1, 4:], resets(1, 6, {}))
    torch.testing.assert_close(out[0, 4:], tail[0], atol=1e-6, rtol=0)
    head = run_sequence(enc, x[:1, :4], resets(1, 4, {}))
    torch.testing.assert_close(out[0, :4], head[0], atol=1e-6, rtol=0)
    # Row 1 has no inner reset: unaffected by row 0 being split.
    torch.testing.assert_close(out[1], run_sequence(enc, x[1:], resets(1, 10, {}))[0])
    # Without the reset, the state flows on and the outputs after step 4 differ.
    assert not torch.allclose(run_sequence(enc, x[:1], resets(1, 10, {}))[0, 4:], tail[0])


@pytest.mark.parametrize("name", RECURRENT)
def test_window_starting_mid_trial_starts_from_zero_state(name: str) -> None:
    enc = FACTORIES[name]().eval()
    x = torch.randn(3, 7, D_IN)
    not_init = torch.zeros(3, 7, dtype=torch.bool)
    torch.testing.assert_close(
        run_sequence(enc, x, not_init), run_sequence(enc, x, resets(3, 7, {}))
    )


@pytest.mark.parametrize("name", list(FACTORIES))
def test_causal(name: str) -> None:
    enc = FACTORIES[name]().eval()
    x = torch.randn(3, 9, D_IN)
    is_init = resets(3, 9, {0: [3], 2: [6]})
    base = run_sequence(enc, x, is_init)
    for t in (0, 3, 7):
        x2 = x.clone()
        x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :]) * 5
        out = run_sequence(enc, x2, is_init)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=0, rtol=0)
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


@pytest.mark.parametrize("name", list(FACTORIES))
def test_padding_does_not_leak(name: str) -> None:
    enc = FACTORIES[name]().eval()
    x = torch.randn(3, 8, D_IN)
    is_init = resets(3, 8, {1: [2]})
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[0, 5:] = False
    mask[2, 1:] = False
    base = run_sequence(enc, x, is_init, mask)
    x2, init2 = x.clone(), is_init.clone()
    x2[~mask] = 1e3 * torch.randn_like(x2[~mask])
    init2[0, 6] = True  # padding may repeat a trial start; must not matter either
    out = run_sequence(enc, x2, init2, mask)
    torch.testing.assert_close(out[mask], base[mask], atol=1e-6, rtol=0)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", RECURRENT)
def test_rollout_memory_lives_outside_state_dict_and_resets_rows(name: str) -> None:
    enc = FACTORIES[name]().eval()
    keys_before = set(enc.state_dict())
    x = torch.randn(3, 4, D_IN)
    run_rollout(enc, x, resets(3, 4, {}))
    assert set(enc.state_dict()) == keys_before
    memory = enc._memory
    assert memory is not None
    assert all(state.shape == (2, 3, 16) for state in memory.values())
    assert set(memory) == ({"h"} if name.startswith("gru") else {"h", "c"})
    assert all(not state.requires_grad for state in memory.values())
    before = {k: v.clone() for k, v in memory.items()}
    enc.reset_memory_rows(memory, torch.tensor([False, True, False]))
    for k, v in memory.items():
        assert (v[:, 1] == 0).all()
        torch.testing.assert_close(v[:, [0, 2]], before[k][:, [0, 2]])
    # A different number of envs gets a fresh memory.
    enc(TensorDict({"tstep_embedding": torch.randn(5, D_IN), "time_idx": torch.zeros(5, 1, dtype=torch.long),
                    "is_init": torch.zeros(5, 1, dtype=torch.bool)}, [5]))  # fmt: skip
    assert enc._memory["h"].shape == (2, 5, 16)


def test_single_env_rollout_with_empty_batch() -> None:
    enc = FACTORIES["gru"]().eval()
    x = torch.randn(1, 5, D_IN)
    expected = run_sequence(enc, x, resets(1, 5, {}))[0]
    enc.reset_memory()
    outs = []
    for t in range(5):
        td = TensorDict(
            {
                "tstep_embedding": x[0, t],
                "time_idx": torch.tensor([t]),
                "is_init": torch.tensor([t == 0]),
            },
            batch_size=[],
        )
        outs.append(enc(td)["state_embedding"])
    torch.testing.assert_close(torch.stack(outs), expected, atol=1e-5, rtol=0)


def test_gradients_flow_in_sequence_mode() -> None:
    enc = FACTORIES["gru"]().train()
    x = torch.randn(2, 6, D_IN, requires_grad=True)
    with set_recurrent_mode(True):
        out = enc(seq_td(x, resets(2, 6, {0: [3]})))["state_embedding"]
    # A random readout: the plain sum of a LayerNorm output has (almost) no gradient.
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and (x.grad.abs().sum(-1) > 0).all()
    assert all(p.grad is not None for p in enc.parameters())


@pytest.mark.parametrize("cls", [GRUTrajEncoder, LSTMTrajEncoder])
def test_packed_and_chunked_resets_agree_with_gradients(cls: type[TrajEncoder]) -> None:
    packed = cls(D_IN, MAX_SEQ_LEN, inner_resets="packed", **RNN_SIZES)
    chunked = cls(D_IN, MAX_SEQ_LEN, inner_resets="chunked", **RNN_SIZES)
    chunked.load_state_dict(packed.state_dict())
    x = torch.randn(3, 11, D_IN)
    td = seq_td(x, resets(3, 11, {0: [4, 9], 2: [4, 5]}))
    outs, grads = [], []
    with set_recurrent_mode(True):
        for enc in (packed, chunked):
            out = enc(td.clone())["state_embedding"]
            (out * torch.linspace(-1, 1, 12)).sum().backward()
            outs.append(out.detach())
            grads.append([p.grad for p in enc.parameters()])
    torch.testing.assert_close(outs[1], outs[0], atol=1e-6, rtol=0)
    for g_packed, g_chunked in zip(*grads):
        torch.testing.assert_close(g_chunked, g_packed, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="inner_resets"):
        cls(D_IN, MAX_SEQ_LEN, inner_resets="loop")


def test_ff_is_memory_free() -> None:
    enc = FACTORIES["ff"]()
    assert not enc.is_stateful
    assert enc.init_memory(3, torch.device("cpu"), torch.float32) == {}
    assert GRUTrajEncoder(D_IN, MAX_SEQ_LEN).is_stateful


def test_split_at_resets_layout() -> None:
    is_init = torch.tensor([[False, False, True, False], [True, True, False, False]])
    seg = split_at_resets(is_init)
    assert seg.seg_id.tolist() == [0, 0, 1, 1, 2, 3, 3, 3]
    assert seg.pos.tolist() == [0, 1, 0, 1, 0, 0, 1, 2]
    assert seg.lengths.tolist() == [2, 2, 1, 3]
    assert seg.max_len == 3


def test_default_sizes_match_reference() -> None:
    gru = GRUTrajEncoder(10, 16)
    assert (gru.rnn.hidden_size, gru.rnn.num_layers, gru.out_dim) == (256, 2, 256)
    ff = FFTrajEncoder(10, 16)
    assert ff.out_dim == 256 and len(ff.blocks) == 1
    assert ff.blocks[0].ff1.out_features == 1024


def test_wrong_feature_size_and_missing_key() -> None:
    enc = FACTORIES["gru"]()
    with set_recurrent_mode(True), pytest.raises(ValueError, match="tstep_embedding"):
        enc(seq_td(torch.randn(2, 3, D_IN + 1), resets(2, 3, {})))
    td = seq_td(torch.randn(2, 3, D_IN), resets(2, 3, {}))
    del td["is_init"]
    with set_recurrent_mode(True), pytest.raises(KeyError, match="is_init"):
        enc(td)
