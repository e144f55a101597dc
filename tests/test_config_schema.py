"""The typed run config (amago_rl/config.py): the objective's options, renamed keys, docs."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from amago_rl import config as config_module
from amago_rl.cli import load_config
from amago_rl.config import LOSS_DEFAULTS, MULTITASK_LOSS_OPTIONS, LossConfig, TrainConfig
from amago_rl.experiment import loss_options
from amago_rl.objectives import AMAGOLoss, MultiTaskAMAGOLoss
from amago_rl.overrides import UnknownConfigKeyError
from amago_rl.run_config import RUN_CONFIG, load_run_config


def _keyword_defaults(fn) -> dict[str, object]:
    return {
        n: p.default
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind is p.KEYWORD_ONLY and p.default is not p.empty
    }


def test_loss_config_lists_exactly_the_losses_options() -> None:
    fields = {f.name for f in dataclasses.fields(LossConfig)}
    amago = set(_keyword_defaults(AMAGOLoss.__init__)) - {"gammas"}
    multitask = set(_keyword_defaults(MultiTaskAMAGOLoss.__init__))
    assert fields == amago | multitask
    assert set(MULTITASK_LOSS_OPTIONS) == multitask - amago


def test_loss_defaults_have_one_owner() -> None:
    """Every option with a LossConfig default is the loss's default; the None ones (per-agent
    defaults) are owned by each loss's signature."""
    for cls in (AMAGOLoss, MultiTaskAMAGOLoss):
        for name, default in _keyword_defaults(cls.__init__).items():
            mine = getattr(LOSS_DEFAULTS, name, "absent")
            if mine is not None and name not in ("gammas", "filter_kwargs"):
                assert default == mine, (cls.__name__, name)


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("amago", {"online_coeff": 1.0, "offline_coeff": 0.1, "num_actions_value_actor": 1}),
        ("multitask", {"online_coeff": 0.0, "offline_coeff": 1.0, "num_actions_value_actor": 3}),
    ],
)
def test_unset_options_take_each_losss_default(agent: str, expected: dict) -> None:
    cfg = load_config([f"agent={agent}", "agent.loss.n_step=3"])
    cls = {"amago": AMAGOLoss, "multitask": MultiTaskAMAGOLoss}[agent]
    options = loss_options(cfg, cls)
    assert options["n_step"] == 3
    assert not set(expected) & set(options)  # left to the loss
    defaults = _keyword_defaults(cls.__init__)
    assert {k: defaults[k] for k in expected} == expected


def test_multitask_options_are_refused_for_the_amago_loss() -> None:
    cfg = load_config(["agent.loss.label_type=hlgauss"])
    with pytest.raises(ValueError, match=r"agent\.loss\.label_type .* agent=multitask"):
        loss_options(cfg, AMAGOLoss)
    assert "label_type" not in loss_options(load_config([]), AMAGOLoss)
    assert loss_options(load_config(["agent=multitask"]), MultiTaskAMAGOLoss)["label_type"] == (
        "twohot"
    )


def test_loss_keys_are_checked_with_close_matches() -> None:
    with pytest.raises(UnknownConfigKeyError, match=r"Did you mean: agent\.loss\.n_step\?"):
        load_config(["agent.loss.n_stpe=3"])
    with pytest.raises(UnknownConfigKeyError, match=r"Did you mean: agent\.loss\.n_step\?"):
        load_config(["+agent.loss.n_stpe=3"])


@pytest.mark.parametrize(
    "override",
    ["agent.loss_kwargs.n_step=3", "+agent.loss_kwargs.n_step=3", "agent.loss_kwargs={}"],
)
def test_the_old_loss_kwargs_key_names_the_new_one(override: str) -> None:
    with pytest.raises(UnknownConfigKeyError, match=r"'agent\.loss_kwargs' is now 'agent\.loss'"):
        load_config([override])


def test_a_run_saved_with_loss_kwargs_still_loads(tmp_path: Path) -> None:
    saved = OmegaConf.to_container(OmegaConf.structured(TrainConfig()))
    del saved["agent"]["loss"]
    saved["agent"]["loss_kwargs"] = {"n_step": 3, "online_coeff": 1.0}
    OmegaConf.save(OmegaConf.create(saved), tmp_path / RUN_CONFIG)
    loss = load_run_config(tmp_path).agent.loss
    assert (loss.n_step, loss.online_coeff, loss.offline_coeff) == (3, 1.0, None)


def test_every_config_field_is_documented() -> None:
    """Each field of every section has a comment above it (``#:``) unless it is a section with
    its own docstring; every section class has a docstring."""
    source = Path(config_module.__file__).read_text()
    lines = source.splitlines()
    undocumented = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        assert ast.get_docstring(node), f"{node.name} has no docstring"
        for stmt in node.body:
            if not isinstance(stmt, ast.AnnAssign):
                continue
            above = lines[stmt.lineno - 2].strip()
            annotation = ast.unparse(stmt.annotation)
            is_section = annotation.endswith("Config")
            documented = above.startswith("#") or is_section
            if not documented:
                undocumented.append(f"{node.name}.{ast.unparse(stmt.target)}")
    assert not undocumented, undocumented
