"""The MLP, the ResNet and the padded CNN on both backends: the same parameters, the same logits
from the same weights, the same batch-norm statistics and L2 penalty; and the check that a model
can take the dataset's images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from mnistlab.backends.keras.env import import_keras
from mnistlab.config.shapes import check_model_fits, cnn_min_side
from mnistlab.errors import ConfigError
from tests.conftest import group_config

keras = import_keras("tensorflow")  # before the Keras side's modules import keras

from mnistlab.backends.keras import model as keras_model  # noqa: E402
from mnistlab.backends.lightning import model as torch_model  # noqa: E402
from tests.backends.test_parity import copy_torch_weights  # noqa: E402

SHAPES = [(28, 28, 1), (32, 32, 3), (8, 8, 1)]  # (height, width, channels)
L2 = 0.003


def build(values: dict, shape: tuple[int, int, int],
          l2: float = L2) -> tuple[DictConfig, torch.nn.Module, keras.Model]:
    """Both backends' networks for one model config, the torch one seeded."""
    cfg = group_config("model", values)
    torch.manual_seed(0)
    net = torch_model.MODELS[cfg.name](cfg, shape, 10)
    return cfg, net, keras_model.MODELS[cfg.name](cfg, shape, 10, l2, [])


def images(shape: tuple[int, int, int], n: int = 16) -> tuple[np.ndarray, torch.Tensor]:
    """The same batch as Keras (N, H, W, C) and torch (N, C, H, W) take it."""
    x = np.random.default_rng(0).random((n, *shape), dtype=np.float32)
    return x, torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def copy_mlp_weights(net: torch.nn.Sequential, model: keras.Model,
                     shape: tuple[int, int, int]) -> None:
    """torch Linear (out, in) -> Dense (in, out); the first layer's inputs are permuted, since
    torch flattens (C, H, W) and Keras (H, W, C)."""
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    denses = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(linears) == len(denses)
    height, width, channels = shape
    # keras input row (h, w, c) is torch column (c, h, w)
    order = np.arange(height * width * channels).reshape(channels, height, width)
    order = order.transpose(1, 2, 0).reshape(-1)
    for i, (src, dst) in enumerate(zip(linears, denses, strict=True)):
        w = src.weight.detach().numpy()
        dst.set_weights([(w[:, order] if i == 0 else w).T, src.bias.detach().numpy()])


def copy_resnet_weights(net: torch.nn.Module, model: keras.Model) -> None:
    """By name (torch `stage2_block1.proj` is Keras `stage2_block1_proj`): conv (out, in, kh, kw)
    -> (kh, kw, in, out); BN (weight, bias, running mean, running var) -> (gamma, beta, moving
    mean, moving variance); Linear (out, in) -> Dense (in, out)."""
    copied = 0
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            weights = [m.weight.detach().numpy().transpose(2, 3, 1, 0)]
        elif isinstance(m, torch.nn.BatchNorm2d):
            weights = [t.detach().numpy() for t in (m.weight, m.bias, m.running_mean,
                                                    m.running_var)]
        elif isinstance(m, torch.nn.Linear):
            weights = [m.weight.detach().numpy().T, m.bias.detach().numpy()]
        else:
            continue
        model.get_layer(name.replace(".", "_")).set_weights(weights)
        copied += 1
    assert copied == sum(1 for layer in model.layers if layer.weights)  # every Keras layer


def randomise_batch_norm(net: torch.nn.Module) -> None:
    """BN parameters and statistics away from their 1 and 0, so copying them is tested."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t, low in ((m.weight, 0.5), (m.bias, -0.5), (m.running_mean, -0.5),
                               (m.running_var, 0.5)):
                    t.copy_(low + torch.rand(t.shape, generator=gen))


def assert_same_l2(net: torch.nn.Module, model: keras.Model) -> None:
    with torch.no_grad():
        expected = float(torch_model.l2_penalty(net, L2))
    assert keras_model.l2_penalty(model) == pytest.approx(expected, rel=1e-5)
    assert len(model.losses) == len(torch_model.kernels(net))  # kernels only: no bias, no BN


def keras_logits(model: keras.Model, x: np.ndarray, training: bool) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=training))


MLPS = [dict(name="mlp"), dict(name="mlp", hidden="[32]", dropout=0.5),
        dict(name="mlp", hidden="[]")]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("values", MLPS, ids=lambda v: str(v.get("hidden", "default")))
def test_mlp_same_params_logits_and_penalty(values: dict, shape: tuple[int, int, int]) -> None:
    _, net, model = build(values, shape)
    copy_mlp_weights(net, model, shape)
    assert keras_model.count_params(model) == torch_model.count_params(net)
    if values == dict(name="mlp") and shape == (28, 28, 1):
        assert torch_model.count_params(net) == 784 * 256 + 256 + 256 * 128 + 128 + 1290
    x, xt = images(shape)
    with torch.no_grad():
        expected = net.eval()(xt).numpy()
    np.testing.assert_allclose(keras_logits(model, x, False), expected, atol=1e-4, rtol=0)
    assert_same_l2(net, model)


RESNETS = [dict(name="resnet"), dict(name="resnet", widths="[8,12]", blocks=1, bn_eps=1e-3,
                                     bn_momentum=0.3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("values", RESNETS, ids=["default", "small"])
def test_resnet_same_params_logits_and_penalty(values: dict,
                                               shape: tuple[int, int, int]) -> None:
    _, net, model = build(values, shape)
    randomise_batch_norm(net)
    copy_resnet_weights(net, model)
    assert keras_model.count_params(model) == torch_model.count_params(net)
    x, xt = images(shape)
    with torch.no_grad():
        expected = net.eval()(xt).numpy()
    np.testing.assert_allclose(keras_logits(model, x, False), expected, atol=1e-4, rtol=0)
    assert_same_l2(net, model)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("values", RESNETS, ids=["default", "small"])
def test_resnet_same_batch_statistics_in_training(values: dict,
                                                  shape: tuple[int, int, int]) -> None:
    """One training-mode forward: logits from the batch's statistics agree, and so do the
    running mean and variance it leaves (torch's: the variance's update is unbiased)."""
    _, net, model = build(values, shape)
    randomise_batch_norm(net)
    copy_resnet_weights(net, model)
    x, xt = images(shape, n=8)
    with torch.no_grad():
        expected = net.train()(xt).numpy()
    np.testing.assert_allclose(keras_logits(model, x, True), expected, atol=1e-4, rtol=0)
    bns = [(name, m) for name, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns
    for name, m in bns:
        layer = model.get_layer(name.replace(".", "_"))
        for torch_stat, keras_stat in ((m.running_mean, layer.moving_mean),
                                       (m.running_var, layer.moving_variance)):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(keras_stat),
                                       torch_stat.numpy(), atol=1e-5, rtol=1e-5, err_msg=name)


def test_resnet_downsamples_symmetrically() -> None:
    """Stride-2 convs on even sides, where Keras' "same" would pad only after: the logits of an
    image with one bright pixel in each corner, where misplaced padding shows."""
    shape = (8, 8, 1)
    _, net, model = build(dict(name="resnet", widths="[4,4,4]", blocks=1), shape)
    copy_resnet_weights(net, model)
    x = np.zeros((1, *shape), np.float32)
    x[0, [0, 0, -1, -1], [0, -1, 0, -1]] = 1.0
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(keras_logits(model, x, False), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("overrides", "shape"), [
    (dict(), (28, 28, 1)),
    (dict(), (32, 32, 3)),
    (dict(), (8, 8, 1)),
    (dict(kernel_size=4), (28, 28, 1)),  # an even kernel: the extra zero after, on both
    (dict(channels="[8,16,32]", kernel_size=5), (32, 32, 3)),
])
def test_cnn_same_padding_parity(overrides: dict, shape: tuple[int, int, int]) -> None:
    _, net, model = build(dict(name="cnn", padding="same", **overrides), shape)
    copy_torch_weights(net, model)
    assert keras_model.count_params(model) == torch_model.count_params(net)
    x, xt = images(shape)
    with torch.no_grad():
        expected = net.eval()(xt).numpy()
    np.testing.assert_allclose(keras_logits(model, x, False), expected, atol=1e-4, rtol=0)
    assert_same_l2(net, model)


# without dropout, whose masks the two backends draw differently, in the training-mode pass
BN_CNNS = [dict(name="cnn", batch_norm=True, dropout=0.0),
           dict(name="cnn", batch_norm=True, dropout=0.0, channels="[8,16]", kernel_size=5,
                padding="same", bn_eps=1e-3, bn_momentum=0.3)]


@pytest.mark.parametrize("values", BN_CNNS, ids=["default", "small"])
def test_cnn_with_batch_norm_same_logits_statistics_and_penalty(values: dict) -> None:
    """Conv-MaxPool-BN-ReLU on both: the same parameters (no conv bias), the same logits from
    the running statistics and from a training batch's, the same running statistics after it,
    and an L2 penalty on the kernels only."""
    shape = (28, 28, 1)
    _, net, model = build(values, shape)
    randomise_batch_norm(net)
    copy_torch_weights(net, model)
    assert keras_model.count_params(model) == torch_model.count_params(net)
    assert all(m.bias is None for m in net if isinstance(m, torch.nn.Conv2d))
    x, xt = images(shape)
    with torch.no_grad():
        expected = net.eval()(xt).numpy()
    np.testing.assert_allclose(keras_logits(model, x, False), expected, atol=1e-4, rtol=0)
    with torch.no_grad():
        expected = net.train()(xt).numpy()
    np.testing.assert_allclose(keras_logits(model, x, True), expected, atol=1e-4, rtol=0)
    bns = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    k_bns = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == len(k_bns) == 2
    for m, layer in zip(bns, k_bns, strict=True):
        for torch_stat, keras_stat in ((m.running_mean, layer.moving_mean),
                                       (m.running_var, layer.moving_variance)):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(keras_stat),
                                       torch_stat.numpy(), atol=1e-5, rtol=1e-5)
    assert_same_l2(net, model)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_is_the_generic_one(dtype: str) -> None:
    """TensorFlow's fused kernel and Keras' generic ops (the other Keras backends') give one
    output and leave one pair of moving statistics, torch's unbiased variance in both."""
    rng = np.random.default_rng(2)
    x = keras.ops.convert_to_tensor(rng.normal(1.0, 2.0, (8, 5, 5, 3)).astype(np.float32))
    # gamma, beta, moving mean, moving variance away from their 1, 0, 0, 1
    weights = [rng.uniform(low, low + 1, 3).astype(np.float32) for low in (0.5, -0.5, -0.5, 0.5)]
    layers = [keras_model.BatchNorm(momentum=0.7, epsilon=1e-3, dtype=dtype) for _ in range(2)]
    for layer in layers:
        layer.build(x.shape)
        layer.set_weights(weights)
    inputs = keras.ops.cast(x, layers[0].compute_dtype)
    fused, generic = layers[0]._fused(inputs), layers[1]._generic(inputs)
    tolerance = 1e-5 if dtype == "float32" else 1e-2  # bf16 outputs: 8 bits of mantissa
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(fused, "float32")),
                               keras.ops.convert_to_numpy(keras.ops.cast(generic, "float32")),
                               atol=tolerance, rtol=tolerance)
    for a, b in zip(layers[0].non_trainable_weights, layers[1].non_trainable_weights,
                    strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, rtol=1e-5)


# --- check_model_fits: one line naming the smallest size and what fits ----------------------

def cnn(**values: object) -> DictConfig:
    return group_config("model", dict(name="cnn", **values))


def fit_error(model: DictConfig, shape: tuple[int, int, int], dataset: str = "digits") -> str:
    with pytest.raises(ConfigError) as info:
        check_model_fits(model, shape, dataset)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_cnn_too_deep_for_the_images_names_the_smallest_size_and_what_fits() -> None:
    assert fit_error(cnn(), (8, 8, 1)) == (
        "model=cnn (channels [32, 64], kernel_size 3, padding valid) needs images of at least "
        "10x10; data=digits has 8x8: use model.padding=same, model.kernel_size<=2, at most 1 "
        "channels entry, or model=mlp")
    assert fit_error(cnn(padding="same", channels="[8,8,8,8]"), (12, 12, 3), "tiny") == (
        "model=cnn (channels [8, 8, 8, 8], kernel_size 3, padding same) needs images of at "
        "least 16x16; data=tiny has 12x12: use at most 3 channels entries or model=mlp")
    assert fit_error(cnn(channels="[4]", kernel_size=7), (2, 2, 1)).endswith(
        "needs images of at least 8x8; data=digits has 2x2: use model.padding=same, "
        "model.kernel_size<=1, or model=mlp")


def test_the_smallest_size_is_exact() -> None:
    check_model_fits(cnn(), (10, 10, 1), "d")
    check_model_fits(cnn(), (28, 28, 1), "mnist")
    fit_error(cnn(), (9, 12, 1))  # the smaller side decides
    check_model_fits(cnn(padding="same"), (4, 4, 1), "d")
    fit_error(cnn(padding="same"), (3, 3, 1))


@pytest.mark.parametrize("values", [dict(), dict(kernel_size=5), dict(kernel_size=4),
                                    dict(channels="[4,4,4]", kernel_size=2),
                                    dict(padding="same", channels="[4,4,4]", kernel_size=4)],
                         ids=str)
def test_the_smallest_size_is_the_smallest_the_network_takes(values: dict) -> None:
    """Against the torch network itself: it builds and runs exactly from cnn_min_side on."""
    model = cnn(**values)
    need = cnn_min_side(model)
    for side in range(1, need + 4):
        try:
            torch_model.build_cnn(model, (side, side, 1), 10).eval()(torch.zeros(1, 1, side, side))
            runs = True
        except (RuntimeError, ValueError):
            runs = False
        assert runs == (side >= need), side


def test_the_mlp_and_the_resnet_take_any_image() -> None:
    for name in ("mlp", "resnet"):
        model = group_config("model", dict(name=name))
        for shape in ((1, 1, 1), (8, 8, 1), (5, 3, 3)):
            check_model_fits(model, shape, "d")
    net = torch_model.build_resnet(group_config("model", dict(name="resnet")), (1, 1, 1), 10)
    assert net.eval()(torch.zeros(1, 1, 1, 1)).shape == (1, 10)


def test_a_saved_resnet_loads_back_with_its_batch_norm(tmp_path) -> None:
    """A resumed Keras run reloads the whole model: the BN layer with torch's moving variance
    must come back as itself."""
    _, _, model = build(dict(name="resnet", widths="[4,8]", blocks=1), (8, 8, 1))
    x, _ = images((8, 8, 1), n=4)
    model(x, training=True)  # moving statistics away from their start
    model.save(tmp_path / "resnet.keras")
    loaded = keras.models.load_model(tmp_path / "resnet.keras")
    assert isinstance(loaded.get_layer("stem_bn"), keras_model.BatchNorm)
    np.testing.assert_allclose(keras_logits(loaded, x, False), keras_logits(model, x, False),
                               atol=1e-6, rtol=0)
