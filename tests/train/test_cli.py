"""`amago-train` as a newcomer runs it (issue 18): no run_dir, a user's env factory, typos in keys,
resume of a run that is not there, and the last lines after Ctrl-C. Every CLI-level bug is tested
through the console script in a fresh working directory."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from amago_rl.cli import _report, load_config
from amago_rl.overrides import UnknownConfigKeyError
from amago_rl.run_config import load_run_config
from amago_rl.trainer import Trainer

from .test_trainer import SMALL, rows, trainer_with_sigint_at_update

TINY = [o for o in SMALL if not o.startswith("trainer.epochs")] + [
    "trainer.epochs=1",
    "trainer.updates_per_epoch=2",
]
FACTORY = "import gymnasium as gym\n\n\ndef make_env():\n    return gym.make('CartPole-v1')\n"


AmagoTrain = Callable[..., subprocess.CompletedProcess[str]]  # the `amago_train` fixture


def test_bare_command_runs_without_run_dir(tmp_path: Path, amago_train: AmagoTrain) -> None:
    """`amago-train` with no run_dir writes runs/<name>/<date_time>/ under the working dir."""
    out = amago_train(tmp_path, *TINY)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs" / "amago_tmaze_passive").iterdir()
    assert (run_dir / "config.yaml").exists() and (run_dir / "metrics.csv").exists()
    assert str(run_dir) in out.stdout


def test_users_factory_without_arguments_runs_from_its_folder(
    tmp_path: Path, amago_train: AmagoTrain
) -> None:
    """README: `amago-train experiment=none env.name=my_pkg.mod:make_env` with a factory that takes
    no arguments; the module sits in the working directory, which is not on the script's path."""
    (tmp_path / "my_envs.py").write_text(FACTORY)
    out = amago_train(tmp_path, "experiment=none", "env.name=my_envs:make_env", *TINY, "run_dir=r")
    assert out.returncode == 0, out.stderr[-2000:]
    assert rows(tmp_path / "r")[0]["epoch"] == "0"


def test_another_env_does_not_inherit_the_presets_env_options() -> None:
    """env.name without an experiment: the generic defaults and no T-Maze kwargs; options given on
    the same command line are kept."""
    cfg = load_config(["env.name=CartPole-v1"])
    assert cfg.env.kwargs == {} and cfg.exploration.name == "egreedy"
    assert cfg.model.max_seq_len == 128, "the generic defaults, not quickstart's 11"
    cfg = load_config(["experiment=quickstart", "env.name=CartPole-v1", "+env.kwargs.sutton=1"])
    assert cfg.env.kwargs == {"sutton": 1}, "quickstart's corridor_length is dropped"
    cfg = load_config(["experiment=popgym_cpu", "env.name=popgym/CountRecallEasy"])
    assert cfg.env.name == "popgym/CountRecallEasy" and cfg.model.max_seq_len == 64
    assert load_config([]).env.kwargs == {"corridor_length": 10}, "the default is untouched"


@pytest.mark.parametrize("typo", ["trainer.epochz=3", "+trainer.epochz=3", "~trainer.epochz"])
def test_unknown_keys_fail_with_close_matches(
    typo: str, tmp_path: Path, amago_train: AmagoTrain
) -> None:
    with pytest.raises(UnknownConfigKeyError, match=r"Did you mean: trainer\.epochs\?"):
        load_config([typo])
    out = amago_train(tmp_path, typo)
    assert out.returncode != 0
    assert "Did you mean: trainer.epochs?" in out.stderr and "Valid keys at 'trainer'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "runs").exists(), "nothing is written for a config error"


def test_unknown_keys_at_every_level() -> None:
    with pytest.raises(UnknownConfigKeyError, match="Did you mean: seed"):
        load_config(["sed=1"])
    with pytest.raises(UnknownConfigKeyError, match="is a value, not a section"):
        load_config(["+seed.x=1"])
    with pytest.raises(UnknownConfigKeyError, match=r"model\.max_seq_len"):
        load_config(["model.max_seqlen=3"])
    # the objective's options are typed (tests/test_config_schema.py has the rest)
    cfg = load_config(["agent.loss.popart_shared_scale=false"])
    assert cfg.agent.loss.popart_shared_scale is False


def test_resume_true_without_a_checkpoint_fails(tmp_path: Path, amago_train: AmagoTrain) -> None:
    out = amago_train(tmp_path, "run_dir=runs/typo", "resume=true")
    assert out.returncode != 0 and "resume=auto" in out.stderr and "does not exist" in out.stderr
    assert not (tmp_path / "runs").exists(), "a mistyped path leaves nothing behind"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoints"):
        Trainer(load_config([*TINY, "resume=true"]), empty)
    with pytest.raises(ValueError, match="true, false or auto"):
        Trainer(load_config([*TINY, "resume=maybe"]), empty)
    with pytest.raises(ValueError, match="needs the run to continue"):
        load_config_and_check_resume(["resume=true"])
    assert list(empty.iterdir()) == []


def load_config_and_check_resume(overrides: list[str]) -> None:
    from amago_rl.run_config import check_resumable

    cfg = load_config(overrides)
    check_resumable(cfg.run_dir, cfg.resume)


def test_resume_auto_starts_then_continues(tmp_path: Path, amago_train: AmagoTrain) -> None:
    first = amago_train(tmp_path, *TINY, "run_dir=r", "resume=auto")
    assert first.returncode == 0, first.stderr[-2000:]
    again = amago_train(tmp_path, *TINY, "run_dir=r", "resume=auto", "trainer.epochs=2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert [r["epoch"] for r in rows(tmp_path / "r")] == ["0", "1"]


def test_resume_continues_with_the_runs_config(tmp_path: Path, amago_train: AmagoTrain) -> None:
    """`amago-train run_dir=X resume=true trainer.epochs=2` continues X with the config X was
    trained with (not the defaults); another experiment on the same run_dir is refused."""
    first = amago_train(tmp_path, "experiment=bandit_cpu", *TINY, "seed=5", "run_dir=r")
    assert first.returncode == 0, first.stderr[-2000:]
    again = amago_train(tmp_path, "run_dir=r", "resume=true", "trainer.epochs=2")
    assert again.returncode == 0, again.stderr[-2000:]
    cfg = load_run_config(tmp_path / "r")
    assert cfg.env.name == "bandit" and cfg.seed == 5 and cfg.trainer.epochs == 2
    assert [r["epoch"] for r in rows(tmp_path / "r")] == ["0", "1"]
    other = amago_train(tmp_path, "run_dir=r", "resume=true", "experiment=quickstart")
    assert other.returncode != 0 and "compose another config" in other.stderr
    same = OmegaConf.load(tmp_path / "r" / "config.yaml")
    assert same.trainer.epochs == 2, "a refused resume leaves the run's config alone"


def test_ctrl_c_report_says_what_was_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = trainer_with_sigint_at_update(tmp_path, monkeypatch, 6)
    trainer.train()
    report = _report(trainer, tmp_path)
    assert report.startswith("amago-train: interrupted after 1 of 3 epochs")
    assert "first 2 updates are kept" in report and "finished" not in report
    assert trainer.last_checkpoint is not None and trainer.last_checkpoint.exists()
    assert f"checkpoint saved: {trainer.last_checkpoint}" in report
    assert f"amago-train run_dir={tmp_path} resume=true" in report
