"""The study's runs as experiments (experiment=study/*): each composes to SEED.md's
hyperparameters, and command-line overrides beat it; the sweeps come from the top-level sweeps/."""

from __future__ import annotations

import pytest

from mnistlab.config import CONF_DIR
from tests.conftest import STUDY, SWEEPS

EXPERIMENTS = sorted(p.relative_to(CONF_DIR / "experiment").with_suffix("").as_posix()
                     for p in (CONF_DIR / "experiment").rglob("*.yaml"))


def test_every_study_run_is_an_experiment() -> None:
    assert sorted(STUDY) == [e for e in EXPERIMENTS if e.startswith("study/")]
    assert sorted(["optimizer", "augmentation", "l2", "study_runs", "ablation_grid",
                   "optuna", "study", "ablations_mnist", "ablations_fashion_mnist"]) == SWEEPS


@pytest.mark.parametrize("name", sorted(STUDY))
def test_experiment_has_the_study_hyperparameters(compose_cfg, name: str) -> None:
    cfg = compose_cfg([f"experiment={name}"])
    got = (cfg.backend.name, cfg.data.batch_size, cfg.trainer.max_epochs, cfg.optimizer.lr,
           cfg.model.dropout, cfg.optimizer.name, cfg.aug.name, cfg.regularization.weight)
    assert got == STUDY[name]
    assert cfg.experiment == name


def test_command_line_overrides_beat_the_experiment(compose_cfg) -> None:
    cfg = compose_cfg(["experiment=study/pt_run3", "trainer.max_epochs=3"])
    assert cfg.trainer.max_epochs == 3 and cfg.optimizer.lr == 1e-5


def test_sweeps_are_the_top_level_folder_that_hydra_searches(compose_cfg) -> None:
    """sweeps/ is a real folder beside conf/, no link inside it; Hydra finds its options (the
    mnistlab-sweeps config source) and nothing else of the repository root as a group."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mnistlab.config import REPO_ROOT

    assert (REPO_ROOT / "sweeps").is_dir() and not (REPO_ROOT / "sweeps").is_symlink()
    assert not (CONF_DIR / "sweeps").exists()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        assert sorted(loader.get_group_options("sweeps")) == SWEEPS
        assert not {"docs", "tests", "src", "outputs"} & set(loader.list_groups(""))
    assert compose_cfg(["sweeps=optimizer"]).data.name == "mnist"  # a sweep composes
