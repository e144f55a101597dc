"""Timestep encoders: InputNorm statistics, MLP and CNN encoders (shapes, specs, masks, DrQ, errors)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torchrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiOneHot,
    OneHot,
    Unbounded,
)

from amago_rl.modules.tstep import (
    CNNTstepEncoder,
    InputNorm,
    MLPTstepEncoder,
    random_shift,
)
from amago_rl.modules.tstep.cnn import symlog
from amago_rl.modules.tstep.drq import n_unaugmented

# ----------------------------------------------------------------------------- InputNorm


def test_input_norm_first_and_second_update_by_hand() -> None:
    norm = InputNorm(2).train()
    x1 = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    out = norm(x1)
    # beta_1 = 1: the statistics become the batch moments.
    torch.testing.assert_close(norm.mean, torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(norm.second_moment, torch.tensor([5.0, 20.0]))
    sigma = torch.sqrt(torch.tensor([5.0 - 4.0, 20.0 - 16.0]) + 1e-5)
    torch.testing.assert_close(out, (x1 - torch.tensor([2.0, 4.0])) / sigma)
    x2 = torch.tensor([[10.0, 0.0]])
    norm(x2)
    beta_2 = 1e-4 / (1 - (1 - 1e-4) ** 2)  # ~0.50003
    torch.testing.assert_close(
        norm.mean, torch.tensor([(1 - beta_2) * 2 + beta_2 * 10, (1 - beta_2) * 4])
    )
    torch.testing.assert_close(
        norm.second_moment, torch.tensor([(1 - beta_2) * 5 + beta_2 * 100, (1 - beta_2) * 20])
    )
    assert norm.count.item() == 2


def test_input_norm_updates_in_train_mode_only_and_from_masked_rows_only() -> None:
    x = torch.randn(3, 4, 5)
    mask = torch.ones(3, 4, 1, dtype=torch.bool)
    mask[0, 2:] = False
    mask[2, 1:] = False
    garbage = x.clone()
    garbage[~mask.squeeze(-1)] = 1e6
    masked = InputNorm(5).train()
    masked(garbage, mask)
    reference = InputNorm(5).train()
    reference(x[mask.squeeze(-1)])
    torch.testing.assert_close(masked.mean, reference.mean)
    torch.testing.assert_close(masked.second_moment, reference.second_moment)
    frozen = {k: v.clone() for k, v in masked.state_dict().items()}
    masked.eval()(torch.randn(7, 5))
    masked.train()(torch.randn(2, 5), torch.zeros(2, 1, dtype=torch.bool))  # nothing valid
    for k, v in masked.state_dict().items():
        torch.testing.assert_close(v, frozen[k])
    assert set(frozen) == {"mean", "second_moment", "count"}


def test_input_norm_centres_near_constant_features_and_clips() -> None:
    norm = InputNorm(2)
    norm.mean.copy_(torch.tensor([3.0, 0.0]))
    # Feature 0 is constant (variance 0, sigma = sqrt(1e-5) < 0.01); feature 1 has sigma ~0.02.
    norm.second_moment.copy_(torch.tensor([9.0, 0.0004]))
    out = norm.eval()(torch.tensor([[5.0, 1000.0], [3.0, -0.01]]))
    sigma1 = math.sqrt(0.0004 + 1e-5)
    torch.testing.assert_close(out, torch.tensor([[2.0, 1e4], [0.0, -0.01 / sigma1]]))


def test_input_norm_rejects_wrong_size() -> None:
    with pytest.raises(ValueError, match="expected 3 features"):
        InputNorm(3)(torch.randn(2, 4))


# ----------------------------------------------------------------------------- MLP encoder

OBS_DIMS = {"observation": 4, ("extra", "grid"): 6}


def mlp_td(lead: tuple[int, ...], action_dim: int = 3) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(*lead, 4),
            ("extra", "grid"): torch.randn(*lead, 2, 3),
            "prev_action": torch.randn(*lead, action_dim),
            "prev_reward": torch.randn(*lead, 1),
        },
        batch_size=lead,
    )


@pytest.mark.parametrize("lead", [(), (5,), (2, 7)])
def test_mlp_shapes_and_layer_norm_output(lead: tuple[int, ...]) -> None:
    enc = MLPTstepEncoder(OBS_DIMS, 3, out_dim=8, hidden_dim=16)
    assert enc.in_keys == ["observation", ("extra", "grid"), "prev_action", "prev_reward"]
    assert enc.out_keys == ["tstep_embedding"] and enc.out_dim == 8
    out = enc(mlp_td(lead))["tstep_embedding"]
    assert out.shape == (*lead, 8) and out.dtype == torch.float32
    torch.testing.assert_close(out.mean(-1), torch.zeros(lead), atol=1e-5, rtol=0)


def test_mlp_input_is_flattened_obs_then_reward_then_action() -> None:
    enc = MLPTstepEncoder(OBS_DIMS, 3, normalize_inputs=False)
    td = mlp_td((2, 3))
    expected = torch.cat(
        [
            td["observation"],
            td["extra", "grid"].reshape(2, 3, 6),
            td["prev_reward"],
            td["prev_action"],
        ],
        dim=-1,
    )
    torch.testing.assert_close(enc._features(td), expected)
    assert enc.in_norm is None and enc.in_dim == 4 + 6 + 1 + 3
    # Default architecture: n_layers=2 hidden layers of 512 -> Linear(256), as AMAGO's MLP.
    widths = [m.out_features for m in enc.mlp if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 512, 256]


def test_mlp_steps_are_independent_rollout_equals_sequence() -> None:
    enc = MLPTstepEncoder(OBS_DIMS, 3, out_dim=8, hidden_dim=16).eval()
    td = mlp_td((2, 4))
    seq = enc(td.clone())["tstep_embedding"]
    steps = torch.stack([enc(td[:, t].clone())["tstep_embedding"] for t in range(4)], 1)
    torch.testing.assert_close(steps, seq)


def test_mlp_padding_does_not_touch_statistics_or_real_outputs() -> None:
    enc = MLPTstepEncoder(OBS_DIMS, 3, out_dim=8, hidden_dim=16).train()
    twin = MLPTstepEncoder(OBS_DIMS, 3, out_dim=8, hidden_dim=16).train()
    twin.load_state_dict(enc.state_dict())
    td = mlp_td((2, 5))
    td["mask"] = torch.ones(2, 5, 1, dtype=torch.bool)
    td["mask"][1, 3:] = False
    noisy = td.clone()
    noisy["observation"][1, 3:] = 1e5
    out = enc(td)["tstep_embedding"]
    out_noisy = twin(noisy)["tstep_embedding"]
    torch.testing.assert_close(enc.in_norm.mean, twin.in_norm.mean)
    valid = td["mask"].squeeze(-1)
    torch.testing.assert_close(out[valid], out_noisy[valid])
    # Without the mask the padding leaks into the statistics.
    leaky = MLPTstepEncoder(OBS_DIMS, 3, out_dim=8, hidden_dim=16).train()
    leaky(noisy.exclude("mask"))
    assert not torch.allclose(leaky.in_norm.mean, enc.in_norm.mean)
    # Eval mode freezes the statistics.
    before = enc.in_norm.mean.clone()
    enc.eval()(mlp_td((3,)))
    torch.testing.assert_close(enc.in_norm.mean, before)


def test_mlp_from_specs_selects_observation_leaves() -> None:
    spec = Composite(
        observation=Unbounded((3, 4)),
        flag=Binary(2, shape=(3, 2)),
        cell=OneHot(5, shape=(3, 5)),
        prev_action=Unbounded((3, 2)),
        prev_reward=Unbounded((3, 1)),
        time_idx=Unbounded((3, 1), dtype=torch.long),
        is_init=Unbounded((3, 1), dtype=torch.bool),
        done=Unbounded((3, 1), dtype=torch.bool),
        episode_reward=Unbounded((3, 1)),  # amago_env's logging entry, never an input
        goals=Bounded(-1, 10, (3, 2, 2), dtype=torch.int64),  # integer coordinates: numeric
        nested=Composite(
            pos=Bounded(-1.0, 1.0, (3, 2, 2)), terminated=Unbounded((3, 1)), shape=(3,)
        ),
        shape=(3,),
    )
    enc = MLPTstepEncoder.from_specs(spec, Bounded(-1.0, 1.0, (3, 2)), out_dim=8, hidden_dim=16)
    assert enc.obs_dims == {
        "cell": 5,
        "flag": 2,
        "goals": 4,
        ("nested", "pos"): 4,
        "observation": 4,
    }
    assert enc.action_dim == 2 and enc.in_dim == 19 + 1 + 2
    only = MLPTstepEncoder.from_specs(spec, OneHot(4), obs_keys=["observation"], out_dim=8)
    assert only.obs_dims == {"observation": 4} and only.action_dim == 4


@pytest.mark.parametrize(
    ("spec", "dim"),
    [
        (OneHot(5), 5),
        (Categorical(5), 5),
        (Categorical(6, shape=(8,)), 6),
        (Bounded(-1.0, 1.0, (3,)), 3),
        (Binary(4), 4),
        (Composite(action=OneHot(7)), 7),
    ],
)
def test_from_specs_reads_the_action_dim(spec, dim: int) -> None:
    obs_spec = Composite(observation=Unbounded((4,)))
    assert MLPTstepEncoder.from_specs(obs_spec, spec, out_dim=8).action_dim == dim


def test_unsupported_specs_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="MultiOneHot"):
        MLPTstepEncoder.from_specs(Composite(observation=Unbounded((4,))), MultiOneHot([2, 3]))
    with pytest.raises(ValueError, match="one-hot"):
        MLPTstepEncoder.from_specs(Composite(observation=Categorical(4)), OneHot(2))
    image = Bounded(0, 255, (8, 8, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match="CNNTstepEncoder"):
        MLPTstepEncoder.from_specs(Composite(observation=image), OneHot(2))
    with pytest.raises(KeyError, match="nope"):
        MLPTstepEncoder.from_specs(
            Composite(observation=Unbounded(3)), OneHot(2), obs_keys=["nope"]
        )


def test_mlp_errors_name_the_key() -> None:
    enc = MLPTstepEncoder(OBS_DIMS, 3)
    td = mlp_td((2,))
    td["observation"] = torch.randn(2, 5)
    with pytest.raises(ValueError, match=r"'observation'.*total size 4"):
        enc(td)
    with pytest.raises(KeyError, match="grid"):
        enc(mlp_td((2,)).exclude(("extra", "grid")))
    with pytest.raises(ValueError, match="prev_action"):
        enc(mlp_td((2,), action_dim=4))


# ----------------------------------------------------------------------------- CNN encoder


def cnn_td(
    lead: tuple[int, ...], image_shape: tuple[int, int, int], uint8: bool = True
) -> TensorDict:
    image = torch.randint(0, 256, (*lead, *image_shape), dtype=torch.uint8)
    return TensorDict(
        {
            "pixels": image if uint8 else image.float(),
            "prev_action": torch.randn(*lead, 2),
            "prev_reward": torch.randn(*lead, 1),
        },
        batch_size=lead,
    )


def make_cnn(cnn: str, channels_last: bool = True, **kwargs) -> CNNTstepEncoder:
    size = 36 if cnn == "nature" else 16  # smallest sizes both CNNs reduce to 1x1
    shape = (size, size, 3) if channels_last else (3, size, size)
    return CNNTstepEncoder(
        "pixels",
        shape,
        2,
        channels_last=channels_last,
        cnn=cnn,
        img_features=16,
        out_dim=8,
        **kwargs,
    )


@pytest.mark.parametrize("cnn", ["nature", "impala"])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("lead", [(3,), (2, 3)])
def test_cnn_shapes(cnn: str, channels_last: bool, lead: tuple[int, ...]) -> None:
    enc = make_cnn(cnn, channels_last)
    assert enc.in_keys == ["pixels", "prev_action", "prev_reward"] and enc.out_dim == 8
    out = enc(cnn_td(lead, enc.image_shape))["tstep_embedding"]
    assert out.shape == (*lead, 8) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("cnn", ["nature", "impala"])
def test_cnn_layouts_and_dtypes_agree(cnn: str) -> None:
    last, first = make_cnn(cnn, True), make_cnn(cnn, False)
    first.load_state_dict(last.state_dict())
    td = cnn_td((2, 2), last.image_shape)
    out_last = last(td.clone())["tstep_embedding"]
    td_first = td.clone()
    td_first["pixels"] = td["pixels"].permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(first(td_first)["tstep_embedding"], out_last)
    td_float = td.clone()
    td_float["pixels"] = td["pixels"].float()
    torch.testing.assert_close(last(td_float)["tstep_embedding"], out_last)
    single = last(td[0, 0].clone())["tstep_embedding"]  # no leading dims at all
    torch.testing.assert_close(single, out_last[0, 0])


def test_nature_cnn_centre_tap_init() -> None:
    conv = make_cnn("nature").backbone.net[0]
    w = conv.weight
    assert w.shape == (32, 3, 8, 8)
    off_centre = w.clone()
    off_centre[:, :, 4, 4] = 0
    assert (off_centre == 0).all() and (w[:, :, 4, 4] != 0).any() and (conv.bias == 0).all()


@pytest.mark.parametrize(
    ("b", "f", "clean"),
    [(1, 0.75, 0), (4, 0.75, 1), (5, 0.75, 2), (8, 0.75, 2), (4, 0.0, 3), (4, 1.0, 0)],
)
def test_n_unaugmented_follows_amago_rule(b: int, f: float, clean: int) -> None:  # fmt: skip
    assert n_unaugmented(b, f) == clean


def test_random_shift_is_an_integer_crop_equal_to_drqv2_grid_sample() -> None:
    images = torch.rand(3, 2, 6, 6)
    shifts = torch.tensor([[0, 8], [4, 4], [7, 1]])
    out = random_shift(images, pad=4, shifts=shifts)
    padded = F.pad(images, (4, 4, 4, 4), mode="replicate")
    for i, (dy, dx) in enumerate(shifts.tolist()):
        torch.testing.assert_close(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
    torch.testing.assert_close(out[1], images[1])  # shift (pad, pad) is the identity
    # DrQ-v2's formulation: sample the padded image at pixel centres moved by whole pixels.
    size = 6 + 8
    centres = torch.linspace(-1 + 1 / size, 1 - 1 / size, size)[:6]
    base = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1)
    grid = base + shifts.flip(-1)[:, None, None, :].float() * 2 / size
    expected = F.grid_sample(padded, grid, padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_drq_only_in_training_and_not_on_first_sequences() -> None:
    plain = make_cnn("nature")
    aug = make_cnn("nature", drq_aug=True)
    aug.load_state_dict(plain.state_dict())
    td = cnn_td((4, 3), plain.image_shape)
    reference = plain.train()(td.clone())["tstep_embedding"]
    torch.testing.assert_close(aug.eval()(td.clone())["tstep_embedding"], reference)
    out = aug.train()(td.clone())["tstep_embedding"]
    torch.testing.assert_close(out[0], reference[0])  # first ceil(0.25 * 4) = 1 sequence is clean
    for b in (1, 2, 3):
        assert not torch.allclose(out[b], reference[b])


def test_symlog() -> None:
    x = torch.tensor([0.0, math.e - 1, -(math.e - 1), 1e6])
    torch.testing.assert_close(symlog(x), torch.tensor([0.0, 1.0, -1.0, math.log1p(1e6)]))


def test_cnn_from_specs() -> None:
    spec = Composite(pixels=Bounded(0, 255, (4, 36, 36, 3), dtype=torch.uint8), shape=(4,))
    enc = CNNTstepEncoder.from_specs(spec, Categorical(2), image_key="pixels", out_dim=8)
    assert enc.image_shape == (36, 36, 3) and enc.action_dim == 2


def test_cnn_errors() -> None:
    with pytest.raises(ValueError, match="3 positive sizes"):
        CNNTstepEncoder("pixels", (36, 36), 2)
    with pytest.raises(ValueError, match="square"):
        CNNTstepEncoder("pixels", (36, 40, 3), 2, drq_aug=True)
    with pytest.raises(ValueError, match="too small"):
        CNNTstepEncoder("pixels", (8, 8, 3), 2, cnn="nature")
    with pytest.raises(ValueError, match="cnn must be one of"):
        CNNTstepEncoder("pixels", (36, 36, 3), 2, cnn="resnet")
    enc = make_cnn("nature")
    with pytest.raises(ValueError, match=r"'pixels'.*\(36, 36, 3\)"):
        enc(cnn_td((2,), (3, 36, 36)))
    with pytest.raises(KeyError, match="pixels"):
        enc(cnn_td((2,), (36, 36, 3)).exclude("pixels"))


@pytest.mark.parametrize(
    ("action_spec", "action_dim"),
    [(OneHot(4), 4), (Categorical(4), 4), (Bounded(-1.0, 1.0, (2,)), 2), (Binary(5), 5)],
)
def test_mlp_from_specs_runs_for_each_action_kind(action_spec, action_dim: int) -> None:
    spec = Composite(observation=Unbounded((3,)), prev_action=Unbounded((action_dim,)))
    enc = MLPTstepEncoder.from_specs(spec, action_spec, out_dim=8, hidden_dim=16)
    td = TensorDict(
        {
            "observation": torch.randn(2, 3, 3),
            "prev_action": torch.zeros(2, 3, action_dim),
            "prev_reward": torch.zeros(2, 3, 1),
        },
        [2, 3],
    )
    assert enc(td)["tstep_embedding"].shape == (2, 3, 8) and enc.in_dim == 3 + 1 + action_dim
