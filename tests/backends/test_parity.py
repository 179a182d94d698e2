"""The Keras backend against the Lightning one: network, L2 penalty, optimizers, augmentation,
the stop at a target validation accuracy."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mnistlab.backends.keras.env import import_keras
from mnistlab.data.catalog import DATASETS
from tests.conftest import debug_run, group_config, metric_rows

keras = import_keras("tensorflow")  # before the Keras side's modules import keras

from mnistlab.backends.keras import augment as keras_augment  # noqa: E402
from mnistlab.backends.keras import model as keras_model  # noqa: E402
from mnistlab.backends.keras import optim as keras_optim  # noqa: E402
from mnistlab.backends.lightning import augment as torch_augment  # noqa: E402
from mnistlab.backends.lightning import model as torch_model  # noqa: E402
from mnistlab.backends.lightning import optim as torch_optim  # noqa: E402
from mnistlab.backends.lightning.module import ClassifierModule  # noqa: E402

SIZE = 28
CENTRE = (SIZE - 1) / 2  # 13.5: both frameworks rotate about the image centre


def copy_torch_weights(net: torch.nn.Sequential, model: keras.Model) -> None:
    """torch conv (out, in, kh, kw) -> keras (kh, kw, in, out); torch flattens (C, H, W) and
    Keras (H, W, C), so the first dense layer's input rows are permuted accordingly."""
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    k_convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    k_denses = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(convs) == len(k_convs) and len(linears) == len(k_denses)
    for src, dst in zip(convs, k_convs, strict=True):
        bias = [] if src.bias is None else [src.bias.detach().numpy()]  # none before a BN
        dst.set_weights([src.weight.detach().numpy().transpose(2, 3, 1, 0), *bias])
    bns = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    k_bns = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == len(k_bns)
    for src, dst in zip(bns, k_bns, strict=True):
        dst.set_weights([t.detach().numpy() for t in (src.weight, src.bias, src.running_mean,
                                                      src.running_var)])
    channels = convs[-1].out_channels
    flat = k_denses[0].input.shape[-1]
    side = math.isqrt(flat // channels)
    # keras row (h, w, c) is torch column (c, h, w)
    order = np.arange(flat).reshape(channels, side, side).transpose(1, 2, 0).reshape(-1)
    w0 = linears[0].weight.detach().numpy()  # (out, in)
    k_denses[0].set_weights([w0[:, order].T, linears[0].bias.detach().numpy()])
    for src, dst in zip(linears[1:], k_denses[1:], strict=True):
        dst.set_weights([src.weight.detach().numpy().T, src.bias.detach().numpy()])


@pytest.mark.parametrize("overrides", [
    [],
    ["model.channels=[8,16,32]", "model.kernel_size=3", "model.dense_units=20",
     "regularization.weight=0.003"],
    ["model.channels=[6]", "model.kernel_size=5", "regularization=none"],
])
def test_same_network_logits_penalty_and_params(compose_cfg, overrides) -> None:
    cfg = compose_cfg(overrides)
    torch.manual_seed(0)
    net = torch_model.build_cnn(cfg.model, (SIZE, SIZE, 1), 10).eval()
    model = keras_model.build_cnn(cfg.model, (SIZE, SIZE, 1), 10, cfg.regularization.weight)
    copy_torch_weights(net, model)

    assert keras_model.count_params(model) == torch_model.count_params(net)
    if not overrides:
        assert keras_model.count_params(model) == 225_034

    x = np.random.default_rng(0).random((16, SIZE, SIZE), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)[:, None]).numpy()
    logits = keras.ops.convert_to_numpy(model(x[..., None], training=False))
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)

    weight = cfg.regularization.weight
    if weight > 0:
        with torch.no_grad():
            expected_l2 = float(torch_model.l2_penalty(net, weight))
        assert keras_model.l2_penalty(model) == pytest.approx(expected_l2, rel=1e-6)
        assert len(model.losses) == len(torch_model.kernels(net))  # kernels only, no biases
    else:
        assert model.losses == []


# --- optimizers: the same hyperparameters give the same steps -------------------------------

OPTIMIZERS = {
    "adam": dict(name="adam", lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-7),
    "adamw": dict(name="adamw", lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-7, weight_decay=0.5),
    "rmsprop": dict(name="rmsprop", lr=1e-3, rho=0.8, eps=1e-7, momentum=0.5),
    "sgd": dict(name="sgd", lr=1e-2, momentum=0.9, nesterov=False),
    "sgd_nesterov": dict(name="sgd", lr=1e-2, momentum=0.9, nesterov=True),
}


def keras_build(opt_cfg: dict) -> keras.optimizers.Optimizer:
    opt = group_config("optimizer", opt_cfg)
    return keras_optim.OPTIMIZERS[opt.name](opt, opt.lr)


def run_steps(opt_cfg: dict, gradients: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Apply the same gradients with both backends' optimizers; return both weights."""
    opt = group_config("optimizer", opt_cfg)
    w0 = np.linspace(-1, 1, gradients[0].size, dtype=np.float32).reshape(gradients[0].shape)
    param = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    t_opt = torch_optim.OPTIMIZERS[opt.name]([param], opt)
    var = keras.Variable(w0.copy())
    k_opt = keras_optim.OPTIMIZERS[opt.name](opt, opt.lr)
    for g in gradients:
        param.grad = torch.from_numpy(g)
        t_opt.step()
        k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    return param.detach().numpy(), keras.ops.convert_to_numpy(var)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_same_optimizer_steps(name: str) -> None:
    rng = np.random.default_rng(1)
    gradients = [(rng.choice([-1, 1], (4, 8)) * rng.uniform(0.05, 1, (4, 8))).astype(np.float32)
                 for _ in range(20)]
    torch_w, keras_w = run_steps(OPTIMIZERS[name], gradients)
    w0 = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)
    # compare the total update, not the weights, so the tolerance is about the optimizer
    np.testing.assert_allclose(keras_w - w0, torch_w - w0, rtol=2e-4, atol=1e-6)


def test_keras_optimizers_take_every_hyperparameter(compose_cfg) -> None:
    adam = keras_build(OPTIMIZERS["adam"])
    assert (adam.beta_1, adam.beta_2, adam.epsilon, adam.amsgrad) == (0.8, 0.99, 1e-7, False)
    rms = keras_build(OPTIMIZERS["rmsprop"])
    assert (rms.rho, rms.epsilon, rms.momentum, rms.centered) == (0.8, 1e-7, 0.5, False)
    sgd = keras_build(OPTIMIZERS["sgd_nesterov"])
    assert (sgd.momentum, sgd.nesterov) == (0.9, True)
    adamw = keras_build(OPTIMIZERS["adamw"])
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert (adamw.beta_1, adamw.beta_2, adamw.epsilon, adamw.weight_decay) == (0.8, 0.99, 1e-7, 0.5)
    for opt in (adam, rms, sgd):
        assert opt.weight_decay is None and opt.clipnorm is None and not opt.use_ema
    lr = float(keras.ops.convert_to_numpy(adam.learning_rate))
    assert lr == pytest.approx(1e-3)


def test_rmsprop_small_gradients() -> None:
    """Near sqrt(eps) torch's own RMSprop parts from Keras; the Lightning backend follows Keras."""
    rng = np.random.default_rng(2)
    gradients = [rng.normal(0, 1e-4, (4, 8)).astype(np.float32) for _ in range(20)]
    torch_w, keras_w = run_steps(OPTIMIZERS["rmsprop"], gradients)
    w0 = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)
    np.testing.assert_allclose(keras_w - w0, torch_w - w0, rtol=2e-4, atol=1e-7)


# --- augmentation: the same per-sample distributions in both backends ------------------------

def keras_augment_batch(aug_cfg: dict, x: np.ndarray) -> np.ndarray:
    """(N, 28, 28) float -> augmented (N, 28, 28) through the Keras layers, training=True."""
    out = keras.ops.convert_to_tensor(x[..., None])
    for layer in keras_augment.AUGMENTATIONS[aug_cfg["name"]](group_config("aug", aug_cfg)):
        out = layer(out, training=True)
    return keras.ops.convert_to_numpy(out)[..., 0]


def torch_augment_batch(aug_cfg: dict, x: np.ndarray) -> np.ndarray:
    augment = torch_augment.AUGMENTATIONS[aug_cfg["name"]](group_config("aug", aug_cfg))
    out = augment(torch.from_numpy(x)[:, None])
    return out[:, 0].numpy()


BACKENDS = {"keras": keras_augment_batch, "lightning": torch_augment_batch}


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)
    torch.manual_seed(0)


def dots(n: int, row: float, col: float) -> np.ndarray:
    """n identical images, each one 2x2 bright block whose centroid is at (row, col)."""
    x = np.zeros((n, SIZE, SIZE), np.float32)
    r, c = int(row - 0.5), int(col - 0.5)
    x[:, r:r + 2, c:c + 2] = 1.0
    return x


def centroids(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The intensity centroid (row, col) of each image; bilinear resampling keeps it in place."""
    rows, cols = np.mgrid[:SIZE, :SIZE]
    mass = x.sum(axis=(1, 2))
    return (x * rows).sum(axis=(1, 2)) / mass, (x * cols).sum(axis=(1, 2)) / mass


@pytest.mark.parametrize("aug", [dict(name="flip", horizontal_p=0.5, vertical_p=0.5),
                                 dict(name="shift_rotate", rotation_degrees=30, shift_x=0.2,
                                      shift_y=0.2)], ids=["flip", "shift_rotate"])
def test_augmentations_move_every_channel_alike(aug: dict) -> None:
    """An RGB batch whose channels are one image scaled by 1, 0.5, 0.25 stays so: each image's
    random transform is drawn once and applied to all its channels."""
    base = np.random.default_rng(0).random((16, SIZE, SIZE), dtype=np.float32)
    rgb = np.stack([base, base * 0.5, base * 0.25], axis=-1)  # (N, H, W, C)
    cfg = group_config("aug", aug)
    torch_out = torch_augment.AUGMENTATIONS[aug["name"]](cfg)(
        torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    keras_out = keras.ops.convert_to_tensor(rgb)
    for layer in keras_augment.AUGMENTATIONS[aug["name"]](cfg):
        keras_out = layer(keras_out, training=True)
    for out in (torch_out, keras.ops.convert_to_numpy(keras_out)):
        assert not np.allclose(out[..., 0], base)  # transformed
        np.testing.assert_allclose(out[..., 1], out[..., 0] * 0.5, atol=1e-6)
        np.testing.assert_allclose(out[..., 2], out[..., 0] * 0.25, atol=1e-6)


def shift_rotate(degrees: float, shift_x: float, shift_y: float) -> dict:
    return dict(name="shift_rotate", rotation_degrees=degrees, shift_x=shift_x, shift_y=shift_y)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_rotation_uniform_within_bounds(backend: str) -> None:
    degrees, n, radius = 20.0, 600, 8.0
    x = dots(n, CENTRE, CENTRE + radius)  # a dot right of the centre
    rows, cols = centroids(BACKENDS[backend](shift_rotate(degrees, 0.0, 0.0), x))
    angle = np.degrees(np.arctan2(rows - CENTRE, cols - CENTRE))
    assert np.abs(angle).max() <= degrees + 1.0
    assert np.abs(angle).max() >= 0.9 * degrees  # the whole range is used
    assert len(np.unique(np.round(angle, 3))) > n // 2  # drawn per sample
    # uniform on [-d, d]: mean 0, standard deviation d / sqrt(3) (a factor of 2 off fails)
    assert abs(angle.mean()) < 1.5
    assert angle.std() == pytest.approx(degrees / math.sqrt(3), rel=0.1)
    np.testing.assert_allclose(np.hypot(rows - CENTRE, cols - CENTRE), radius, atol=0.3)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_shift_uniform_within_bounds_and_after_rotation(backend: str) -> None:
    n, shift_x, shift_y = 600, 0.1, 0.05
    # a dot at the centre: rotating about the centre leaves it there, so it moves only by the
    # shift (a shift applied before the rotation would be rotated past the per-axis bounds)
    x = dots(n, CENTRE, CENTRE)
    rows, cols = centroids(BACKENDS[backend](shift_rotate(20.0, shift_x, shift_y), x))
    dx, dy = cols - CENTRE, rows - CENTRE
    for d, bound in ((dx, shift_x * SIZE), (dy, shift_y * SIZE)):
        assert np.abs(d).max() <= bound + 0.15
        assert np.abs(d).max() >= 0.9 * bound
        assert d.std() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert len(np.unique(np.round(dx, 3))) > n // 2
    assert abs(np.corrcoef(dx, dy)[0, 1]) < 0.15  # drawn independently


def flipped(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which images of an augmented batch of top-left dots were flipped left-right, up-down."""
    rows, cols = centroids(out)
    return cols > CENTRE, rows > CENTRE


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(("horizontal_p", "vertical_p"), [(0.5, 0.5), (0.2, 0.7), (0.0, 1.0)])
def test_flip_rates(backend: str, horizontal_p: float, vertical_p: float) -> None:
    x = dots(2000, 5.5, 8.5)
    aug = dict(name="flip", horizontal_p=horizontal_p, vertical_p=vertical_p)
    h, v = flipped(BACKENDS[backend](aug, x))
    assert h.mean() == pytest.approx(horizontal_p, abs=0.05)
    assert v.mean() == pytest.approx(vertical_p, abs=0.05)
    assert (h & v).mean() == pytest.approx(horizontal_p * vertical_p, abs=0.05)  # independent


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_hflip_mirrors_left_right_only(compose_cfg, backend: str) -> None:
    """aug=hflip (conf/aug/hflip.yaml): a garment's mirror image, never its upside-down one."""
    aug = OmegaConf.to_container(compose_cfg(["aug=hflip"]).aug)
    assert aug == {"name": "hflip", "horizontal_p": 0.5, "vertical_p": 0.0}
    h, v = flipped(BACKENDS[backend](aug, dots(2000, 5.5, 8.5)))
    assert h.mean() == pytest.approx(0.5, abs=0.05) and not v.any()


AUGS = [dict(name="flip", horizontal_p=1.0, vertical_p=1.0), shift_rotate(20.0, 0.1, 0.1)]


@pytest.mark.parametrize("aug", AUGS, ids=["flip", "shift_rotate"])
def test_keras_augments_only_in_training(aug: dict) -> None:
    x = keras.ops.convert_to_tensor(dots(8, 5.5, 8.5)[..., None])
    layers = keras_augment.AUGMENTATIONS[aug["name"]](group_config("aug", aug))
    assert layers
    for layer in layers:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)),
                                      keras.ops.convert_to_numpy(x))
        assert not np.array_equal(keras.ops.convert_to_numpy(layer(x, training=True)),
                                  keras.ops.convert_to_numpy(x))


def test_lightning_augments_only_in_training(compose_cfg) -> None:
    """With flips of probability 1, a step sees flipped images exactly when it augments. (An
    evaluation step's loss leaves out the L2 penalty, which its epoch adds once: the bench's
    process test holds the epoch's validation loss against the bare loop's.)"""
    cfg = compose_cfg(["aug=flip", "aug.horizontal_p=1", "aug.vertical_p=1", "model.dropout=0"])
    module = ClassifierModule(cfg, DATASETS["mnist"]).eval()
    x = torch.from_numpy((dots(8, 5.5, 8.5) * 255).astype(np.uint8))[..., None]  # (N, H, W, 1)
    y = torch.arange(8)

    def loss_on(images: torch.Tensor, penalty: bool = True) -> float:
        logits = module(images.permute(0, 3, 1, 2).float() / 255)
        l2 = torch_model.l2_penalty(module.net, cfg.regularization.weight) if penalty else 0
        return float(torch.nn.functional.cross_entropy(logits, y) + l2)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() outside a Trainer only warns
        for stage in ("val", "test"):
            assert float(module._step((x, y), stage)) == pytest.approx(loss_on(x, penalty=False),
                                                                       rel=1e-6)
        flipped_x = x.flip(1).flip(2)
        assert float(module._step((x, y), "train")) == pytest.approx(loss_on(flipped_x), rel=1e-6)
        assert loss_on(flipped_x) != pytest.approx(loss_on(x), rel=1e-6)


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_stop_at_val_acc_ends_the_run_after_the_first_epoch_that_reaches_it(tiny_data, tmp_path,
                                                                            backend) -> None:
    """Lightning's EarlyStopping(stopping_threshold=...), and on Keras a callback that stops
    its one fit, after the epoch's checkpoints: 1 epoch of 3, then the test of its weights."""
    run = debug_run(tiny_data, tmp_path, f"backend={backend}", "logger=none",
                    "trainer.max_epochs=3", "trainer.stop_at_val_acc=0.01")
    [row] = metric_rows(run)
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["epochs_completed"]) == ("completed", 1)
    assert summary["seconds_to_target"] == pytest.approx(float(row["epoch_seconds"]), abs=1e-3)
    assert summary["test_acc"] is not None
