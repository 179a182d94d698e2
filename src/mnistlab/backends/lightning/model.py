"""The model registry of the torch side (the study's CNN, an MLP, a small ResNet), and the L2
penalty with Keras' semantics; keras/model.py builds the same networks."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from mnistlab.config.shapes import block_side
from mnistlab.registry import Registry

# (model config, input (height, width, channels), classes) -> a network from (N, C, H, W) floats
# to logits
ModelBuilder = Callable[[DictConfig, tuple[int, int, int], int], nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")


@MODELS.register("cnn")
def build_cnn(model: DictConfig, input_shape: tuple[int, int, int],
              num_classes: int) -> nn.Sequential:
    """Conv-MaxPool-ReLU per entry of `channels` -> Flatten -> Dropout -> Dense-ReLU -> Dense.

    The study's blocks are Conv-ReLU-MaxPool; pooling first computes the same function with the
    same gradients (max commutes with ReLU, which never decreases), and the ReLU then touches a
    quarter of the values. With `batch_norm` a block is Conv-MaxPool-BN-ReLU: BN normalises the
    pooled map, a quarter of the conv's output (its statistics are the pooled values', so this
    is not Conv-BN-ReLU-MaxPool), and the conv has no bias (BN's beta is one). padding="same"
    pads like Keras' (symmetric for an odd kernel, the extra row and column after for an even
    one)."""
    layers: list[nn.Module] = []
    height, width, in_ch = input_shape
    for ch in model.channels:
        layers += [nn.Conv2d(in_ch, ch, model.kernel_size, padding=model.padding,
                             bias=not model.batch_norm), nn.MaxPool2d(2)]
        layers += [batch_norm(ch, model), nn.ReLU()] if model.batch_norm else [nn.ReLU()]
        in_ch = ch
        height, width = block_side(height, model), block_side(width, model)
    layers += [
        nn.Flatten(),
        nn.Dropout(model.dropout),
        nn.Linear(in_ch * height * width, model.dense_units),
        nn.ReLU(),
        nn.Linear(model.dense_units, num_classes),
    ]
    return keras_init(nn.Sequential(*layers))


@MODELS.register("mlp")
def build_mlp(model: DictConfig, input_shape: tuple[int, int, int],
              num_classes: int) -> nn.Sequential:
    """Flatten -> Dense-ReLU-Dropout per entry of `hidden` -> Dense. Flattens (C, H, W), where
    Keras flattens (H, W, C): the same network up to the order of the first layer's inputs."""
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for units in model.hidden:
        layers += [nn.Linear(features, units), nn.ReLU(), nn.Dropout(model.dropout)]
        features = units
    layers.append(nn.Linear(features, num_classes))
    return keras_init(nn.Sequential(*layers))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the input (through a 1x1 conv-BN where the block
    downsamples), then ReLU: He et al. 2016's basic block. Module names match the Keras layers'
    (`<block>.conv1` is `<block>_conv1`), which the parity tests copy weights by."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, model: DictConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, padding=1, bias=False)
        self.bn1 = batch_norm(out_ch, model)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = batch_norm(out_ch, model)
        self.proj: nn.Module = nn.Identity()
        self.proj_bn: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.proj = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)
            self.proj_bn = batch_norm(out_ch, model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.proj_bn(self.proj(x)))


def batch_norm(channels: int, model: DictConfig) -> nn.BatchNorm2d:
    """torch's BN: running_var from the unbiased batch variance (keras/model.BatchNorm too)."""
    return nn.BatchNorm2d(channels, eps=model.bn_eps, momentum=model.bn_momentum)


@MODELS.register("resnet")
def build_resnet(model: DictConfig, input_shape: tuple[int, int, int],
                 num_classes: int) -> nn.Sequential:
    """conv3x3-BN-ReLU stem -> `blocks` BasicBlocks per entry of `widths`, the first of each
    stage after the first with stride 2 -> global average pooling -> Dense. Convolutions before
    BN have no bias (BN's beta is one). Any image of at least 1x1 fits: a padded stride-2 conv
    takes a side n to ceil(n / 2)."""
    width = model.widths[0]
    layers: dict[str, nn.Module] = {
        "stem_conv": nn.Conv2d(input_shape[2], width, 3, padding=1, bias=False),
        "stem_bn": batch_norm(width, model),
        "stem_relu": nn.ReLU(),
    }
    for stage, out_ch in enumerate(model.widths, 1):
        for block in range(1, model.blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            layers[f"stage{stage}_block{block}"] = BasicBlock(width, out_ch, stride, model)
            width = out_ch
    layers |= {"pool": nn.AdaptiveAvgPool2d(1), "flatten": nn.Flatten(),
               "logits": nn.Linear(width, num_classes)}
    return keras_init(nn.Sequential(OrderedDict(layers)))


def keras_init(net: nn.Sequential) -> nn.Sequential:
    """Keras' defaults (Glorot uniform kernels, zero biases; BN starts at gamma 1, beta 0 on
    both), so both backends start from one distribution."""
    for m in kernel_layers(net):
        nn.init.xavier_uniform_(m.weight)  # glorot_uniform
        if m.bias is not None:
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
