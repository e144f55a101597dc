"""MambaTrajEncoder plumbing, checked against a pure-torch stand-in for ``mamba_ssm.Mamba``.

``mamba-ssm`` needs CUDA and is not installed in CI. The stand-in below follows the interface and
the math of ``mamba_ssm.modules.mamba_simple.Mamba`` (causal depthwise conv + selective scan in
``forward``; ``step`` / ``allocate_inference_cache`` for decoding) on CPU, so the encoder's segment
splitting, state handling and resets are tested for real.
"""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn
from torchrl.modules import set_recurrent_mode

from amago_rl.errors import CUDARequiredError, SetupError
from amago_rl.modules.trajectory import MambaTrajEncoder
from amago_rl.modules.trajectory import mamba as mamba_mod


def resets(b: int, length: int, at: dict[int, list[int]]) -> torch.Tensor:
    is_init = torch.zeros(b, length, dtype=torch.bool)
    is_init[:, 0] = True
    for row, steps in at.items():
        is_init[row, steps] = True
    return is_init


def run_sequence(enc, x, is_init, mask=None) -> torch.Tensor:
    b, length, _ = x.shape
    td = TensorDict(
        {"tstep_embedding": x, "time_idx": torch.zeros(b, length, 1, dtype=torch.long),
         "is_init": is_init.unsqueeze(-1)},
        [b, length],
    )  # fmt: skip
    if mask is not None:
        td["mask"] = mask.unsqueeze(-1)
    with set_recurrent_mode(True), torch.no_grad():
        return enc(td)["state_embedding"]


def run_rollout(enc, x, is_init) -> torch.Tensor:
    enc.reset_memory()
    outs = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            td = TensorDict(
                {"tstep_embedding": x[:, t], "time_idx": torch.zeros(x.shape[0], 1, dtype=torch.long),
                 "is_init": is_init[:, t, None]},
                [x.shape[0]],
            )  # fmt: skip
            outs.append(enc(td)["state_embedding"])
    return torch.stack(outs, 1)


class ReferenceMamba(nn.Module):
    """CPU stand-in with ``mamba_ssm.Mamba``'s constructor, ``forward``, ``step`` and cache API."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2) -> None:
        super().__init__()
        self.d_inner, self.d_state, self.d_conv = expand * d_model, d_state, d_conv
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1.0)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def _ssm_inputs(self, x: torch.Tensor):
        dt, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))  # [..., d_inner]
        decay = torch.exp(dt.unsqueeze(-1) * -torch.exp(self.A_log))  # [..., d_inner, d_state]
        return decay, dt.unsqueeze(-1) * b.unsqueeze(-2), c

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        length = hidden_states.shape[1]
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)  # [B, L, d_inner]
        x = F.conv1d(F.pad(x.transpose(1, 2), (self.d_conv - 1, 0)), self.conv1d.weight,
                     self.conv1d.bias, groups=self.d_inner)  # fmt: skip
        x = F.silu(x.transpose(1, 2))
        decay, db, c = self._ssm_inputs(x)
        state = x.new_zeros(x.shape[0], self.d_inner, self.d_state)
        ys = []
        for t in range(length):
            state = state * decay[:, t] + x[:, t].unsqueeze(-1) * db[:, t]
            ys.append((state * c[:, t].unsqueeze(1)).sum(-1))
        y = (torch.stack(ys, 1) + self.D * x) * F.silu(z)
        return self.out_proj(y)

    def step(self, hidden_states, conv_state, ssm_state):
        x, z = self.in_proj(hidden_states[:, 0]).chunk(2, dim=-1)
        conv_state.copy_(torch.roll(conv_state, shifts=-1, dims=-1))
        conv_state[:, :, -1] = x
        x = F.silu((conv_state * self.conv1d.weight[:, 0]).sum(-1) + self.conv1d.bias)
        decay, db, c = self._ssm_inputs(x)
        ssm_state.copy_(ssm_state * decay + x.unsqueeze(-1) * db)
        y = ((ssm_state * c.unsqueeze(1)).sum(-1) + self.D * x) * F.silu(z)
        return self.out_proj(y).unsqueeze(1), conv_state, ssm_state

    def allocate_inference_cache(self, batch_size, max_seqlen, dtype=None, **kwargs):
        dtype = dtype or self.conv1d.weight.dtype
        return (
            torch.zeros(batch_size, self.d_inner, self.d_conv, dtype=dtype),
            torch.zeros(batch_size, self.d_inner, self.d_state, dtype=dtype),
        )


@pytest.fixture
def installed_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import mamba_ssm`` gives the CPU stand-in (the CUDA checks still apply)."""
    module = types.ModuleType("mamba_ssm")
    module.Mamba = ReferenceMamba
    monkeypatch.setitem(sys.modules, "mamba_ssm", module)


@pytest.fixture
def fake_mamba_ssm(installed_stand_in: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in, with the CUDA requirement lifted so the plumbing runs on CPU."""
    monkeypatch.setattr(mamba_mod, "require_cuda", lambda device=None: None)


def make_encoder() -> MambaTrajEncoder:
    return MambaTrajEncoder(6, 8, d_model=8, n_layers=2, d_state=4, d_conv=3, expand=2).eval()


def test_reference_mamba_step_matches_forward() -> None:
    mamba = ReferenceMamba(8, d_state=4, d_conv=3)
    x = torch.randn(2, 7, 8)
    conv, ssm = mamba.allocate_inference_cache(2, 7)
    with torch.no_grad():
        steps = torch.cat([mamba.step(x[:, t : t + 1], conv, ssm)[0] for t in range(7)], 1)
        torch.testing.assert_close(steps, mamba(x), atol=1e-5, rtol=0)


def test_rollout_equals_sequence_with_resets(fake_mamba_ssm: None) -> None:
    enc = make_encoder()
    x = torch.randn(3, 20, 6)
    is_init = resets(3, 20, {1: [4], 2: [4, 13, 14]})
    seq = run_sequence(enc, x, is_init)
    assert seq.shape == (3, 20, 8)
    torch.testing.assert_close(run_rollout(enc, x, is_init), seq, atol=1e-5, rtol=0)
    # Rollout memory: per layer [N, expand * d_model, d_conv] and [N, expand * d_model, d_state].
    assert [tuple(s.shape) for s in enc._memory["conv"]] == [(3, 16, 3)] * 2
    assert [tuple(s.shape) for s in enc._memory["ssm"]] == [(3, 16, 4)] * 2


def test_inner_reset_equals_separate_window_and_padding_is_ignored(fake_mamba_ssm: None) -> None:
    enc = make_encoder()
    x = torch.randn(2, 9, 6)
    out = run_sequence(enc, x, resets(2, 9, {0: [5]}))
    torch.testing.assert_close(out[0, 5:], run_sequence(enc, x[:1, 5:], resets(1, 4, {}))[0])
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    x2 = x.clone()
    x2[1, 6:] = 100.0
    out2 = run_sequence(enc, x2, resets(2, 9, {0: [5]}), mask)
    torch.testing.assert_close(out2[mask], out[mask], atol=1e-6, rtol=0)


def test_missing_package_error_gives_the_cuda_install_recipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mamba_ssm", None)  # `import mamba_ssm` raises ImportError
    with pytest.raises(ImportError) as info:
        make_encoder()
    assert isinstance(info.value, SetupError)  # amago-train prints it without a traceback
    message = str(info.value)
    assert "pip install causal-conv1d mamba-ssm --no-build-isolation" in message
    assert "pip install packaging wheel ninja" in message
    assert "CUDA build of torch" in message and "nvcc" in message
    assert "trajectory=gru or trajectory=transformer" in message


def test_installed_without_cuda_device_is_a_clear_error(
    installed_stand_in: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CUDARequiredError, match=r"no CUDA device is available.*trajectory=gru"):
        make_encoder()


def test_inputs_off_cuda_are_a_clear_error(
    installed_stand_in: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # built on a GPU machine ...
    enc = make_encoder()
    x = torch.randn(2, 5, 6)  # ... but run on CPU tensors (e.g. a CPU collector's copy)
    with pytest.raises(CUDARequiredError, match="its inputs are on cpu"):
        run_sequence(enc, x, resets(2, 5, {}))
    with pytest.raises(CUDARequiredError, match="its inputs are on cpu"):
        run_rollout(enc, x, resets(2, 5, {}))
