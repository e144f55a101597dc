"""Plain MLP builder shared by the actor head (and usable by user heads)."""

from __future__ import annotations

from torch import nn

from amago_rl.modules.activation import make_activation


def build_mlp(
    in_dim: int, hidden_dim: int, n_layers: int, out_dim: int, activation: str = "leaky_relu"
) -> nn.Sequential:
    """``n_layers`` hidden layers of ``hidden_dim`` units (activation after each), then a linear
    output layer: ``[..., in_dim] -> [..., out_dim]`` (reference ``MLP``: n_layers + 1 linears)."""
    if n_layers < 0 or hidden_dim <= 0 or in_dim <= 0 or out_dim <= 0:
        raise ValueError(
            f"build_mlp: need positive dims and n_layers >= 0, got in_dim={in_dim}, "
            f"hidden_dim={hidden_dim}, n_layers={n_layers}, out_dim={out_dim}."
        )
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_layers):
        layers += [nn.Linear(width, hidden_dim), make_activation(activation)]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)
