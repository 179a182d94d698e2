"""The model registry of the torch side (the study's CNN), and the L2 penalty with Keras'
semantics; keras/model.py builds the same networks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from mnistlab.registry import Registry

# (model config, image (height, width), classes) -> a network from (N, 1, H, W) floats to logits
ModelBuilder = Callable[[DictConfig, tuple[int, int], int], nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")


@MODELS.register("cnn")
def build_cnn(model: DictConfig, image_shape: tuple[int, int], num_classes: int) -> nn.Sequential:
    """Conv-MaxPool-ReLU per entry of `channels` -> Flatten -> Dropout -> Dense-ReLU -> Dense.

    The study's blocks are Conv-ReLU-MaxPool; pooling first computes the same function with the
    same gradients (max commutes with ReLU, which never decreases), and the ReLU then touches a
    quarter of the values."""
    layers: list[nn.Module] = []
    (height, width), in_ch = image_shape, 1
    for ch in model.channels:
        layers += [nn.Conv2d(in_ch, ch, model.kernel_size), nn.MaxPool2d(2), nn.ReLU()]
        in_ch = ch
        height, width = ((side - model.kernel_size + 1) // 2 for side in (height, width))
    layers += [
        nn.Flatten(),
        nn.Dropout(model.dropout),
        nn.Linear(in_ch * height * width, model.dense_units),
        nn.ReLU(),
        nn.Linear(model.dense_units, num_classes),
    ]
    net = nn.Sequential(*layers)
    for m in kernel_layers(net):  # Keras' defaults, so both backends start from one distribution
        nn.init.xavier_uniform_(m.weight)  # glorot_uniform
        nn.init.zeros_(m.bias)
    return net


def kernel_layers(net: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def kernels(net: nn.Module) -> list[torch.Tensor]:
    """Conv and dense weights, not biases: what Keras' kernel_regularizer covers."""
    return [m.weight for m in kernel_layers(net)]


def l2_penalty(net: nn.Module, weight: float) -> torch.Tensor:
    """weight * sum(w^2): keras.regularizers.L2, added to the loss (not weight decay)."""
    return weight * sum(w.pow(2).sum() for w in kernels(net))


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
