"""Image backbones for :class:`CNNTstepEncoder`: ``[N, C, H, W]`` float -> ``[N, C', H', W']``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from amago_rl.modules.activation import make_activation


def _centre_tap_init(conv: nn.Conv2d) -> None:
    """AMAGO's conv init: all taps zero except an orthogonal centre tap (leaky_relu gain), so a
    fresh layer acts like a 1x1 orthogonal projection; zero bias."""
    with torch.no_grad():
        conv.weight.zero_()
        mid_h, mid_w = conv.kernel_size[0] // 2, conv.kernel_size[1] // 2
        centre = torch.empty(conv.out_channels, conv.in_channels // conv.groups)
        nn.init.orthogonal_(centre, gain=nn.init.calculate_gain("leaky_relu"))
        conv.weight[:, :, mid_h, mid_w] = centre
        if conv.bias is not None:
            conv.bias.zero_()


class NatureCNN(nn.Module):
    """The DQN ("Nature") CNN: three conv + activation layers, no padding.

    Args:
        in_channels: ``C``. channels, kernels, strides: per layer (default [32, 64, 64],
            [8, 4, 3], [4, 2, 1]). activation: name.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int] = (32, 64, 64),
        kernels: Sequence[int] = (8, 4, 3),
        strides: Sequence[int] = (4, 2, 1),
        activation: str = "leaky_relu",
    ) -> None:
        super().__init__()
        if not len(channels) == len(kernels) == len(strides):
            raise ValueError("NatureCNN: channels, kernels and strides need the same length.")
        layers: list[nn.Module] = []
        width = in_channels
        for out, kernel, stride in zip(channels, kernels, strides):
            conv = nn.Conv2d(width, out, kernel_size=kernel, stride=stride)
            _centre_tap_init(conv)
            layers += [conv, make_activation(activation)]
            width = out
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ResidualBlock(nn.Module):
    """``GroupNorm(x + conv(act(conv(act(x)))))`` at constant width and resolution."""

    def __init__(self, depth: int, activation: str, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(depth, depth, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(depth, depth, kernel_size=3, padding=1)
        self.act = make_activation(activation)
        self.norm = nn.GroupNorm(groups, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.conv2(self.act(self.conv1(self.act(x)))))


class ImpalaCNN(nn.Module):
    """IMPALA-style CNN: per stage conv3 -> maxpool3/stride2 -> 2 residual blocks (GroupNorm).

    Args:
        in_channels: ``C``. depths: stage widths (default [16, 32, 32]). activation: name.
        groups: GroupNorm groups (default 4; must divide every depth).
    """

    def __init__(
        self,
        in_channels: int,
        depths: Sequence[int] = (16, 32, 32),
        activation: str = "leaky_relu",
        groups: int = 4,
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        width = in_channels
        for depth in depths:
            stages += [
                nn.Conv2d(width, depth, kernel_size=3, padding=1),
                nn.MaxPool2d(3, stride=2),
                _ResidualBlock(depth, activation, groups),
                _ResidualBlock(depth, activation, groups),
            ]
            width = depth
        self.net = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
