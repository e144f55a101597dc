"""amago_rl: in-context reinforcement learning (AMAGO) from TorchRL components."""

from __future__ import annotations

__version__ = "0.1.0"
