"""The augmentation registry of the torch side: whole-batch transforms on the training device,
with random parameters drawn per sample (keras/augment.py has the same names and semantics).

One affine grid per batch (torch's affine_grid/grid_sample) rather than torchvision's v2
transforms, which draw one set of parameters for a whole batch tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from mnistlab.registry import Registry

Augment = Callable[[torch.Tensor], torch.Tensor]  # float batch (N, 1, H, W) -> same shape
AUGMENTATIONS: Registry[Callable[[DictConfig], Augment]] = Registry("aug")


def flip(x: torch.Tensor, horizontal_p: float, vertical_p: float) -> torch.Tensor:
    """Flip each image left-right with probability horizontal_p and up-down with vertical_p."""
    n = x.shape[0]
    h = (torch.rand(n, device=x.device) < horizontal_p).view(n, 1, 1, 1)
    x = torch.where(h, x.flip(-1), x)
    v = (torch.rand(n, device=x.device) < vertical_p).view(n, 1, 1, 1)
    return torch.where(v, x.flip(-2), x)


@torch.autocast("cpu", enabled=False)
@torch.autocast("cuda", enabled=False)
def shift_rotate(x: torch.Tensor, degrees: float, shift_x: float, shift_y: float) -> torch.Tensor:
    """Rotate by U(-degrees, degrees) about the centre, shift by U(-s, s) of the size; zero fill.
    In float32 also under bf16/fp16 autocast (which would build the sampling grid in bf16), as
    Keras' augmentation layers (dtype float32)."""
    n = x.shape[0]
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(degrees)
    # affine_grid works in [-1, 1] coordinates, so a shift of s * width is 2 * s
    tx = (torch.rand(n, device=x.device) * 2 - 1) * shift_x * 2
    ty = (torch.rand(n, device=x.device) * 2 - 1) * shift_y * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    # the grid maps output to input pixels: the inverse of rotate-then-shift
    theta = torch.stack([
        torch.stack([cos, sin, -(cos * tx + sin * ty)], dim=1),
        torch.stack([-sin, cos, -(-sin * tx + cos * ty)], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@AUGMENTATIONS.register("none")
def no_augmentation(aug: DictConfig) -> Augment:
    return lambda x: x


# the builders read the config once: a DictConfig lookup costs ~40 us, three a step at batch 50
@AUGMENTATIONS.register("flip")
@AUGMENTATIONS.register("hflip")  # conf/aug/hflip.yaml: flip with vertical_p 0
def flip_augmentation(aug: DictConfig) -> Augment:
    horizontal_p, vertical_p = float(aug.horizontal_p), float(aug.vertical_p)
    return lambda x: flip(x, horizontal_p, vertical_p)


@AUGMENTATIONS.register("shift_rotate")
def shift_rotate_augmentation(aug: DictConfig) -> Augment:
    degrees, shift_x, shift_y = float(aug.rotation_degrees), float(aug.shift_x), float(aug.shift_y)
    return lambda x: shift_rotate(x, degrees, shift_x, shift_y)
