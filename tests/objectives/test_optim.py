"""make_optimizer: AdamW settings, linear warm-up, shared parameters counted once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from amago_rl.objectives.optim import make_optimizer, unique_parameters


def test_adamw_with_linear_warmup() -> None:
    net = nn.Linear(3, 2)
    opt, sched = make_optimizer(net, lr=1e-3, weight_decay=0.1, warmup_steps=4)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"]
    assert opt.param_groups[0]["weight_decay"] == 0.1
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        net(torch.randn(1, 3)).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    assert lrs == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])


def test_defaults_and_shared_parameters() -> None:
    shared = nn.Linear(2, 2)
    a, b = nn.Sequential(shared, nn.Linear(2, 1)), nn.Sequential(shared, nn.Linear(2, 3))
    frozen = nn.Linear(2, 2).requires_grad_(False)
    params = unique_parameters(a, b, frozen)
    assert len(params) == 6  # shared counted once, frozen skipped
    opt, sched = make_optimizer(a, b)
    group = opt.param_groups[0]
    assert len(group["params"]) == 6 and group["weight_decay"] == 1e-3
    assert sched.base_lrs == [1e-4] and group["lr"] == 0.0  # warm-up from 0 over 500 steps
    for _ in range(500):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_errors() -> None:
    with pytest.raises(ValueError, match="at least one"):
        make_optimizer()
    with pytest.raises(ValueError, match="no trainable"):
        make_optimizer(nn.Linear(1, 1).requires_grad_(False))


def test_fused_and_loop_adamw_agree() -> None:
    torch.manual_seed(0)
    a = nn.Linear(4, 3)
    b = nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    opt_a, _ = make_optimizer(a, lr=1e-2, warmup_steps=0)
    opt_b, _ = make_optimizer(b, lr=1e-2, warmup_steps=0, fused=False)
    x = torch.randn(8, 4)
    for _ in range(3):
        for net, opt in ((a, opt_a), (b, opt_b)):
            net(x).pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_linear_decay_to_final_lr_after_warmup() -> None:
    net = nn.Linear(3, 2)
    opt, sched = make_optimizer(net, lr=1e-3, warmup_steps=2, final_lr=1e-4, decay_steps=5)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # warm-up 0 -> lr over 2 steps, then lr -> final_lr over steps 2..5, then constant
    assert lrs == pytest.approx([0.0, 5e-4, 1e-3, 7e-4, 4e-4, 1e-4, 1e-4, 1e-4])


def test_decay_arguments_are_checked() -> None:
    net = nn.Linear(1, 1)
    with pytest.raises(ValueError, match="together"):
        make_optimizer(net, final_lr=1e-5)
    with pytest.raises(ValueError, match="final_lr must be in"):
        make_optimizer(net, lr=1e-4, final_lr=1e-3, decay_steps=1000)
    with pytest.raises(ValueError, match="must exceed warmup_steps"):
        make_optimizer(net, warmup_steps=500, final_lr=1e-5, decay_steps=500)
