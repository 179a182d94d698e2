"""Composition, schemas and value rules: what `train.py` accepts before any data is read."""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from mnistlab.config import CONF_DIR
from mnistlab.config.checks import RULES
from mnistlab.config.schema import SCHEMAS
from mnistlab.errors import ConfigError, one_line
from mnistlab.run.training import check_config as validate

# sweeps/ holds multirun definitions, hydra/ Hydra's own groups (launchers); experiment/ is below
NOT_GROUPS = {"sweeps", "hydra", "experiment"}


def _options(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


GROUP_OPTIONS = [
    (group.name, option)
    for group in sorted(p for p in CONF_DIR.iterdir() if p.is_dir())
    if group.name not in NOT_GROUPS and not group.name.startswith((".", "_"))
    for option in _options(group)
]
# experiment/study/tf_run3.yaml is the option study/tf_run3
EXPERIMENTS = sorted(p.relative_to(CONF_DIR / "experiment").with_suffix("").as_posix()
                     for p in (CONF_DIR / "experiment").rglob("*.yaml"))
GROUPS = {g for g, _ in GROUP_OPTIONS}


@functools.cache
def _composed(group_overrides: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(group_overrides))


def cfg_with(overrides: list[str]) -> DictConfig:
    """Like compose(overrides), but the group choices are composed once per module (a compose
    takes ~0.3 s) and the key=value overrides are merged into a copy, still type-checked by the
    schema; the override route itself is covered by the compose tests above and below."""
    groups = tuple(o for o in overrides if o.split("=")[0] in GROUPS)
    values = [o for o in overrides if o not in groups]
    cfg = copy.deepcopy(_composed(groups))
    cfg.merge_with_dotlist(values)
    return cfg


def test_the_conf_tree_was_discovered() -> None:
    groups = {g for g, _ in GROUP_OPTIONS}
    assert {"data", "model", "optimizer", "aug", "regularization", "backend", "trainer",
            "logger", "paths"} <= groups
    assert ("optimizer", "sgd") in GROUP_OPTIONS and ("aug", "flip") in GROUP_OPTIONS


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in
                                                                 GROUP_OPTIONS])
def test_every_option_composes_and_validates(group: str, option: str) -> None:
    cfg = _composed((f"{group}={option}",))
    assert group in cfg
    validate(cfg)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


@pytest.mark.skipif(not EXPERIMENTS, reason="conf/experiment/ has no experiments")
@pytest.mark.parametrize("experiment", EXPERIMENTS or ["<none>"])
def test_every_experiment_composes_and_validates(compose_cfg, experiment: str) -> None:
    cfg = compose_cfg([f"experiment={experiment}"])
    validate(cfg)
    OmegaConf.to_container(cfg, resolve=True)


# ---------------------------------------------------------------- the default is tf_run3


def test_default_is_the_studys_best_recipe(monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = _composed(())
    validate(cfg)
    assert cfg.data.name == "mnist"
    assert cfg.data.batch_size == 50
    assert cfg.data.val_size == 10_000
    assert cfg.data.split_seed == 42
    assert cfg.data.train_subset is None
    assert cfg.trainer.max_epochs == 25
    assert cfg.trainer.limit_train_batches is None
    assert cfg.model.name == "cnn"
    assert list(cfg.model.channels) == [32, 64]
    assert cfg.model.kernel_size == 3
    assert cfg.model.dense_units == 128
    assert cfg.model.dropout == pytest.approx(0.2)
    opt = cfg.optimizer
    assert opt.name == "adam"
    assert opt.lr == pytest.approx(1e-4)
    assert (opt.beta1, opt.beta2) == (pytest.approx(0.9), pytest.approx(0.999))
    assert opt.eps == pytest.approx(1e-7)
    aug = cfg.aug
    assert aug.name == "shift_rotate"
    assert aug.rotation_degrees == pytest.approx(20.0)
    assert (aug.shift_x, aug.shift_y) == (pytest.approx(0.1), pytest.approx(0.1))
    assert cfg.regularization.name == "l2"
    assert cfg.regularization.weight == pytest.approx(1e-4)
    assert cfg.backend.name == "lightning"
    assert cfg.logger.name == "wandb"
    assert cfg.logger.mode == "offline"  # WANDB_MODE unset


@pytest.mark.parametrize(("env", "mode"), [("offline", "offline"), ("online", "online"),
                                           ("disabled", "disabled")])
def test_wandb_mode_follows_the_environment(monkeypatch, env: str, mode: str) -> None:
    monkeypatch.setenv("WANDB_MODE", env)  # ${oc.env:WANDB_MODE,offline} resolves on access
    assert _composed(()).logger.mode == mode


def test_a_bad_wandb_mode_from_the_environment_is_rejected(monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "bogus")
    with pytest.raises(ConfigError, match=r"logger\.mode=bogus"):
        validate(_composed(()))


@pytest.mark.parametrize(("option", "expected"), [
    ("adam", {"lr": 1e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7}),
    ("rmsprop", {"lr": 1e-4, "rho": 0.9, "eps": 1e-7, "momentum": 0.0}),
    ("sgd", {"lr": 1e-3, "momentum": 0.0, "nesterov": False}),
])
def test_optimizer_hyperparameters_are_written_out(option: str, expected: dict) -> None:
    # in the composed config (a run's .hydra/config.yaml and its W&B config), with the schema's
    # defaults: both backends' own defaults differ (torch Adam eps 1e-8, RMSprop alpha 0.99), so
    # nothing may be left to them; the YAML only names the option and overrides (adamw's lr)
    schema_fields = {f.name for f in dataclasses.fields(SCHEMAS["optimizer"][option])}
    composed = _composed((f"optimizer={option}",)).optimizer
    assert set(composed) == schema_fields
    written = OmegaConf.load(CONF_DIR / "optimizer" / f"{option}.yaml")
    assert set(written) - {"defaults", "name"} <= {"lr"}, "a default belongs in the schema"
    for key, value in expected.items():
        assert composed[key] == pytest.approx(value), key


# ---------------------------------------------------------------- rejected at compose time


@pytest.mark.parametrize(("override", "key"), [
    ("optimizer.lr=abc", "optimizer.lr"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs"),
    ("data.batch_size=x", "data.batch_size"),
    ("data.val_size=ten", "data.val_size"),
    ("model.channels=[a,b]", "model.channels"),
    ("model.dropout=high", "model.dropout"),
    ("data.download=maybe", "data.download"),
    ("aug.rotation_degrees=[1,2]", "aug.rotation_degrees"),
])
def test_wrong_types_are_rejected_at_compose_time(compose_cfg, override: str, key: str) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg([override])
    line = one_line(info.value)
    assert "\n" not in line
    assert override in line  # names the key and the bad value
    assert isinstance(info.value.__cause__, ValidationError), line


@pytest.mark.parametrize(("overrides", "key"), [
    (["optimizer.foo=1"], "optimizer.foo"),
    (["optimizer.momentum=0.5"], "optimizer.momentum"),  # adam has no momentum
    (["aug=flip", "aug.rotation_degrees=10"], "aug.rotation_degrees"),
    (["data.batchsize=32"], "data.batchsize"),
    (["foo=1"], "foo"),
])
def test_unknown_keys_are_rejected_at_compose_time(compose_cfg, overrides: list[str],
                                                   key: str) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg(overrides)
    line = one_line(info.value)
    assert "\n" not in line
    assert f"'{key}'" in line


@pytest.mark.parametrize(("override", "group", "option", "allowed"), [
    ("optimizer=lion", "optimizer", "lion", ["adam", "adamw", "rmsprop", "sgd"]),
    ("scheduler=step", "scheduler", "step", ["cosine", "none", "onecycle"]),
    ("aug=rotate", "aug", "rotate", ["flip", "hflip", "none", "shift_rotate"]),
    ("data=cifar10", "data", "cifar10",
     ["digits", "fashion_mnist", "image_folder", "mnist", "npz"]),
    ("backend=jax", "backend", "jax", ["keras", "lightning"]),
    ("logger=comet", "logger", "comet", ["csv", "mlflow", "none", "tensorboard", "wandb"]),
])
def test_unknown_options_are_rejected_in_one_line(compose_cfg, override: str, group: str,
                                                  option: str, allowed: list[str]) -> None:
    with pytest.raises(MissingConfigException) as info:
        compose_cfg([override])
    line = one_line(info.value)
    assert "\n" not in line
    assert f"'{option}'" in line and group in line
    assert ", ".join(allowed) in line  # every allowed option, sorted
    assert len(str(info.value).splitlines()) > 1  # Hydra's own message really was multi-line


def test_one_line_of_other_hydra_errors(compose_cfg) -> None:
    for overrides in (["optimizer.lr=["], ["experiment=nope"], ["model.channels=[1,x]"]):
        with pytest.raises(HydraException) as info:
            compose_cfg(overrides)
        line = one_line(info.value)
        assert line and "\n" not in line and "  " not in line, (overrides, line)


@pytest.mark.parametrize(("override", "hint"), [
    ("hydra.run.dir=out dir/(x)", """'hydra.run.dir="out dir/(x)"'"""),
    ("data.dir=a b'c", "a character the override grammar does not allow there"),
])
def test_an_override_hydra_cannot_parse_says_how_to_quote_it(override: str, hint: str) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    with pytest.raises(HydraException) as info:
        OverridesParser.create().parse_overrides([override])
    line = one_line(info.value)
    assert line.startswith(f"cannot read the override {override!r}") and hint in line, line
    assert "\n" not in line


def test_one_line_of_a_plain_error() -> None:
    message = "data.val_size=5 is not allowed"
    assert one_line(ConfigError(message)) == message
    assert one_line(ValueError("first\n\n  second")) == "first"


# ---------------------------------------- value ranges (config/checks.py, and each backend's own)

# (overrides, text that the message must contain: the key and the value as composed)
BAD_VALUES: list[tuple[list[str], str]] = [
    (["data.format=hdf5"], "data.format=hdf5"),
    (["data.image_size=[0,5]"], "data.image_size=[0, 5]"),
    (["data.image_size=[5]"], "data.image_size=[5]"),
    (["data.channels=2"], "data.channels=2"),
    (["data.test_size=0"], "data.test_size=0.0"),
    (["data.test_size=2.5"], "data.test_size=2.5"),
    (["data.val_size=60000"], "data.val_size=60000"),
    (["data.val_size=2.5"], "data.val_size=2.5"),
    (["data.val_size=0"], "data.val_size=0.0"),
    (["data.split_seed=-1"], "data.split_seed=-1"),
    (["data.split_seed=4294967296"], "data.split_seed=4294967296"),
    (["data.batch_size=0"], "data.batch_size=0"),
    (["data.batch_size=-50"], "data.batch_size=-50"),
    (["data.eval_batch_size=0"], "data.eval_batch_size=0"),
    (["data.train_subset=0"], "data.train_subset=0"),
    (["model.name=vit"], "model.name=vit"),
    (["model.channels=[]"], "model.channels=[]"),
    (["model.channels=[32,0]"], "model.channels=[32, 0]"),
    (["model.kernel_size=0"], "model.kernel_size=0"),
    (["model.dense_units=0"], "model.dense_units=0"),
    (["model.dropout=1"], "model.dropout=1.0"),
    (["model.dropout=-0.1"], "model.dropout=-0.1"),
    (["optimizer.lr=0"], "optimizer.lr=0.0"),
    (["optimizer.lr=-1"], "optimizer.lr=-1.0"),
    (["optimizer.beta1=1"], "optimizer.beta1=1.0"),
    (["optimizer.beta2=-0.5"], "optimizer.beta2=-0.5"),
    (["optimizer.eps=0"], "optimizer.eps=0.0"),
    (["optimizer=rmsprop", "optimizer.rho=1"], "optimizer.rho=1.0"),
    (["optimizer=rmsprop", "optimizer.eps=-1e-7"], "optimizer.eps=-1e-07"),
    (["optimizer=rmsprop", "optimizer.momentum=-0.5"], "optimizer.momentum=-0.5"),
    (["optimizer=sgd", "optimizer.momentum=1"], "optimizer.momentum=1.0"),
    (["optimizer=sgd", "optimizer.lr=0"], "optimizer.lr=0.0"),
    (["aug=flip", "aug.horizontal_p=1.5"], "aug.horizontal_p=1.5"),
    (["aug=flip", "aug.vertical_p=-0.1"], "aug.vertical_p=-0.1"),
    (["aug.rotation_degrees=200"], "aug.rotation_degrees=200.0"),
    (["aug.rotation_degrees=-5"], "aug.rotation_degrees=-5.0"),
    (["aug.shift_x=1"], "aug.shift_x=1.0"),
    (["aug.shift_y=-0.1"], "aug.shift_y=-0.1"),
    (["regularization.weight=-1"], "regularization.weight=-1.0"),
    (["regularization=none", "regularization.weight=-0.5"], "regularization.weight=-0.5"),
    (["backend.name=jax"], "backend.name=jax"),
    (["backend=keras", "backend.keras_backend=bogus"], "backend.keras_backend=bogus"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0"),
    (["trainer=debug", "trainer.max_epochs=-1"], "trainer.max_epochs=-1"),
    (["trainer.accelerator=tpu"], "trainer.accelerator=tpu"),
    (["trainer.precision=64"], "trainer.precision=64"),
    (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0"),
    (["trainer.limit_val_batches=0"], "trainer.limit_val_batches=0"),
    (["trainer.limit_test_batches=-1"], "trainer.limit_test_batches=-1"),
    (["logger.name=comet"], "logger.name=comet"),
    (["logger.extra=[comet]"], "logger.extra=['comet']"),
    (["logger.mode=bogus"], "logger.mode=bogus"),
    (["optimizer.name=lion"], "optimizer.name=lion"),
    (["scheduler.name=step"], "scheduler.name=step"),
    (["aug.name=rotate"], "aug.name=rotate"),
    (["regularization.name=l1"], "regularization.name=l1"),
    (["optimizer=adamw", "optimizer.weight_decay=-0.1"], "optimizer.weight_decay=-0.1"),
    (["scheduler=cosine", "scheduler.min_lr=-1"], "scheduler.min_lr=-1.0"),
    (["scheduler=cosine", "scheduler.warmup_epochs=-1"], "scheduler.warmup_epochs=-1"),
    (["scheduler=onecycle", "scheduler.max_lr=0"], "scheduler.max_lr=0.0"),
    (["scheduler=onecycle", "scheduler.pct_start=1"], "scheduler.pct_start=1.0"),
    (["scheduler=onecycle", "scheduler.pct_start=0"], "scheduler.pct_start=0.0"),
    (["scheduler=onecycle", "scheduler.div_factor=0"], "scheduler.div_factor=0.0"),
    (["scheduler=onecycle", "scheduler.final_div_factor=-1"], "scheduler.final_div_factor=-1.0"),
    (["trainer.seed=-1"], "trainer.seed=-1"),
    (["trainer.devices=0"], "trainer.devices=0"),
    (["trainer.devices=many"], "trainer.devices=many"),
    (["trainer.num_nodes=0"], "trainer.num_nodes=0"),
    (["trainer.threads=0"], "trainer.threads=0"),
    (["trainer.stop_at_val_acc=1.5"], "trainer.stop_at_val_acc=1.5"),
    (["trainer.stop_at_val_acc=0"], "trainer.stop_at_val_acc=0.0"),
    (["trainer.seed=4294967296"], "trainer.seed=4294967296"),
    # cross-key checks
    (["scheduler=cosine", "scheduler.min_lr=0.1"], "min_lr <= optimizer.lr"),
    (["scheduler=cosine", "scheduler.warmup_epochs=25"], "warmup_epochs < trainer.max_epochs"),
    (["data.train_subset=50001"], "data.train_subset=50001"),
    (["data.batch_size=1000000"], "batch_size <= 50000, the training images"),
    (["data.train_subset=100", "data.batch_size=101"], "data.batch_size=101"),
    (["data.val_size=20000", "data.train_subset=40001"], "data.train_subset=40001"),
    (["model.channels=[8,8,8,8]"], "channels [8, 8, 8, 8]"),
    (["model.kernel_size=29"], "kernel_size 29"),
    (["model.channels=[32,64]", "model.kernel_size=13"], "kernel_size 13"),
    (["model.padding=full"], "model.padding=full"),
    (["model=mlp", "model.hidden=[64,0]"], "model.hidden=[64, 0]"),
    (["model=resnet", "model.widths=[]"], "model.widths=[]"),
    (["model=resnet", "model.blocks=0"], "model.blocks=0"),
    (["model=resnet", "model.bn_eps=0"], "model.bn_eps=0.0"),
    (["model=resnet", "model.bn_momentum=1"], "model.bn_momentum=1.0"),
]


@pytest.mark.parametrize(("overrides", "names"), BAD_VALUES,
                         ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_bad_values_raise_config_error_naming_key_and_value(overrides: list[str],
                                                            names: str) -> None:
    cfg = cfg_with(overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert names in message, message
    assert "\n" not in message


@pytest.mark.parametrize(("override", "names"), [
    ("optimizer.lr=0", "optimizer.lr=0.0"),
    ("model.dropout=1", "model.dropout=1.0"),
    ("data.train_subset=50001", "data.train_subset=50001"),
])
def test_bad_values_through_compose_overrides(compose_cfg, override: str, names: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(names)):
        validate(compose_cfg([override]))


def test_every_rule_has_a_bad_value_above() -> None:
    covered = {names.split("=")[0] for _, names in BAD_VALUES}
    missing = [key for key, _, _ in RULES if key not in covered]
    assert not missing, f"add a bad value for {missing} to BAD_VALUES"


@pytest.mark.parametrize("overrides", [
    [],
    ["data.val_size=10", "data.train_subset=59990"],
    ["data.val_size=59999", "data.batch_size=1"],  # one training image, a batch of one
    ["data.train_subset=50000"],
    ["data.train_subset=1", "data.batch_size=1", "data.eval_batch_size=1"],
    ["model.dropout=0", "optimizer.beta1=0", "optimizer.beta2=0.9999"],
    ["model.channels=[8,8,8]"],  # 28 -> 13 -> 5 -> 1: still an image
    ["model.channels=[4]", "model.kernel_size=27"],
    ["aug=flip", "aug.horizontal_p=1", "aug.vertical_p=0"],
    ["aug.rotation_degrees=180", "aug.shift_x=0", "aug.shift_y=0.99"],
    ["regularization=none"],
    ["regularization.weight=0"],
    ["optimizer=rmsprop", "optimizer.rho=0", "optimizer.momentum=0.9"],
    ["optimizer=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true"],
    ["trainer=debug", "trainer.accelerator=cpu", "trainer.precision=bf16-mixed"],
    ["trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
     "trainer.limit_test_batches=1"],
    ["backend=keras", "backend.keras_backend=torch"],
    ["backend=keras", "backend.keras_backend=jax"],
    ["logger=csv"],
    ["logger=none"],
    ["logger.mode=disabled"],
    ["data=fashion_mnist", "optimizer=sgd", "aug=none", "backend=keras", "trainer=debug"],
], ids=lambda o: " ".join(o) or "defaults")
def test_good_values_pass(overrides: list[str]) -> None:
    cfg = cfg_with(overrides)
    assert isinstance(cfg, DictConfig)
    validate(cfg)


def test_negative_split_seed_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"data\.split_seed=-1"):
        validate(cfg_with(["data.split_seed=-1"]))
