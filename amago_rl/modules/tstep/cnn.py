"""CNN timestep encoder (AMAGO's ``CNNTstepEncoder``) for a single image observation.

image -> ``x / 128 - 1`` -> CNN -> flatten -> ``Linear(img_features)``;
``symlog([prev_reward, prev_action])`` -> ``Linear(rl2_features)``; concatenate -> activation ->
``Linear(out_dim)`` -> ``LayerNorm`` -> ``tstep_embedding``. Optional DrQ-v2 random shifts in
training mode. Any leading batch dims (``[N]`` rollout, ``[B, L]`` sequences).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import Composite, TensorSpec

from amago_rl import keys
from amago_rl.errors import require_entry
from amago_rl.modules.activation import make_activation
from amago_rl.modules.tstep.convnets import ImpalaCNN, NatureCNN
from amago_rl.modules.tstep.drq import n_unaugmented, random_shift
from amago_rl.modules.tstep.inputs import read_rl2_inputs
from amago_rl.specs import classify_action_spec

_BACKBONES = {"nature": NatureCNN, "impala": ImpalaCNN}


def symlog(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) * log(1 + |x|)``: squashes large rewards while keeping small ones linear."""
    return torch.sign(x) * torch.log1p(x.abs())


class CNNTstepEncoder(TensorDictModuleBase):
    """Timestep encoder for pixel observations.

    Args:
        image_key: the image entry, ``[*lead, *image_shape]`` (uint8 or float pixels in [0, 255]).
        image_shape: ``(H, W, C)`` if ``channels_last`` else ``(C, H, W)``.
        action_dim: size ``A`` of ``prev_action``.
        channels_last: layout of the image entry.
        cnn: ``"nature"`` (DQN CNN) or ``"impala"`` (IMPALA-style residual CNN).
        img_features, rl2_features, out_dim: sizes of the image projection, the
            ``[prev_reward, prev_action]`` projection and the output embedding.
        activation: activation name (CNN and merge layer).
        drq_aug: random-shift augmentation in training mode (square images only).
        aug_fraction: fraction of the sequences (first batch dim) to augment; the first
            ``max(min(ceil((1 - f) B), B - 1), 0)`` stay clean. drq_pad: maximum shift in pixels.
        prev_action_key, prev_reward_key, out_key: TensorDict keys.
    """

    def __init__(
        self,
        image_key: NestedKey,
        image_shape: Sequence[int],
        action_dim: int,
        *,
        channels_last: bool = True,
        cnn: str = "nature",
        img_features: int = 256,
        rl2_features: int = 12,
        out_dim: int = 256,
        activation: str = "leaky_relu",
        drq_aug: bool = False,
        aug_fraction: float = 0.75,
        drq_pad: int = 4,
        prev_action_key: NestedKey = keys.PREV_ACTION,
        prev_reward_key: NestedKey = keys.PREV_REWARD,
        out_key: NestedKey = keys.TSTEP_EMBEDDING,
    ) -> None:
        super().__init__()
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3 or min(image_shape) <= 0:
            raise ValueError(
                f"CNNTstepEncoder: image_shape must be 3 positive sizes, (H, W, C) with "
                f"channels_last=True or (C, H, W) otherwise; got {image_shape} for {image_key!r}."
            )
        channels, height, width = (
            (image_shape[2], image_shape[0], image_shape[1]) if channels_last else image_shape
        )
        if drq_aug and height != width:
            raise ValueError(
                f"CNNTstepEncoder: DrQ augmentation needs square images, got H={height}, W={width} "
                f"for {image_key!r} (image_shape={image_shape}, channels_last={channels_last})."
            )
        if not 0.0 <= aug_fraction <= 1.0:
            raise ValueError(
                f"CNNTstepEncoder: aug_fraction must be in [0, 1], got {aug_fraction}."
            )
        if cnn not in _BACKBONES:
            raise ValueError(
                f"CNNTstepEncoder: cnn must be one of {sorted(_BACKBONES)}, got {cnn!r}."
            )
        self.image_key = image_key
        self.image_shape = image_shape
        self.channels_last = channels_last
        self.action_dim = action_dim
        self.out_dim = out_dim
        self.drq_aug = drq_aug
        self.aug_fraction = aug_fraction
        self.drq_pad = drq_pad
        self.prev_action_key = prev_action_key
        self.prev_reward_key = prev_reward_key
        self.out_key = out_key
        self.in_keys = [image_key, prev_action_key, prev_reward_key]
        self.out_keys = [out_key]

        self.backbone = _BACKBONES[cnn](channels, activation=activation)
        try:
            with torch.no_grad():
                n_flat = self.backbone(torch.zeros(1, channels, height, width)).flatten(1).shape[1]
        except RuntimeError as err:
            raise ValueError(
                f"CNNTstepEncoder: images of {height}x{width} are too small for the {cnn!r} CNN."
            ) from err
        self.img_proj = nn.Linear(n_flat, img_features)
        self.rl2_proj = nn.Linear(1 + action_dim, rl2_features)
        self.act = make_activation(activation)
        self.merge = nn.Linear(img_features + rl2_features, out_dim)
        self.out_norm = nn.LayerNorm(out_dim)

    @classmethod
    def from_specs(
        cls,
        observation_spec: Composite,
        action_spec: TensorSpec,
        *,
        image_key: NestedKey = keys.OBSERVATION,
        **kwargs: Any,
    ) -> CNNTstepEncoder:
        """Build from env specs; ``image_shape`` is the image leaf's shape without batch dims."""
        spec = observation_spec.get(image_key, None)
        if spec is None or isinstance(spec, Composite):
            raise KeyError(
                f"CNNTstepEncoder: no image leaf {image_key!r} in the observation spec; leaves: "
                f"{list(observation_spec.keys(True, True))}."
            )
        shape = tuple(spec.shape[len(observation_spec.shape) :])
        action_dim = classify_action_spec(action_spec, batch_dims=None).dim
        return cls(image_key, shape, action_dim, **kwargs)

    def _get(self, td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        return require_entry(td, key, type(self).__name__)

    def _images(self, image: torch.Tensor, lead: torch.Size) -> torch.Tensor:
        """``[*lead, *image_shape]`` -> float ``[prod(lead), C, H, W]``, augmented if training."""
        if tuple(image.shape[len(lead) :]) != self.image_shape or image.shape[: len(lead)] != lead:
            raise ValueError(
                f"{type(self).__name__}: entry {self.image_key!r} has shape {tuple(image.shape)}; "
                f"expected batch dims {tuple(lead)} followed by image_shape {self.image_shape} "
                f"(channels_last={self.channels_last})."
            )
        x = image.reshape(-1, *self.image_shape).to(self.out_norm.weight.dtype)
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        if self.drq_aug and self.training:
            n_seqs = lead[0] if len(lead) else 1
            # Sequences are the first batch dim; every frame of an augmented one gets its own shift.
            first = n_unaugmented(n_seqs, self.aug_fraction) * (x.shape[0] // max(n_seqs, 1))
            x = torch.cat((x[:first], random_shift(x[first:], self.drq_pad)), dim=0)
        return x / 128.0 - 1.0

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        where = type(self).__name__
        prev_reward, prev_action, lead = read_rl2_inputs(
            tensordict, self.prev_reward_key, self.prev_action_key, self.action_dim, where
        )
        images = self._images(self._get(tensordict, self.image_key), lead)
        img = self.img_proj(self.backbone(images).flatten(1)).reshape(*lead, -1)
        rl2 = torch.cat((prev_reward, prev_action), dim=-1).to(img.dtype)
        h = self.act(torch.cat((img, self.rl2_proj(symlog(rl2))), dim=-1))
        tensordict.set(self.out_key, self.out_norm(self.merge(h)))
        return tensordict
