"""Can the model take the dataset's images? The CNN's shape arithmetic, written once for its
builders (the flattened size), the memory estimate and the check before a run, so that a CNN
too deep for small images is one line naming the smallest size it takes, not a framework's
error about a negative dimension."""

from __future__ import annotations

from omegaconf import DictConfig

from mnistlab.errors import ConfigError


def conv_side(side: int, model: DictConfig) -> int:
    """A side after one CNN conv: `valid` shrinks it by kernel_size - 1, `same` keeps it."""
    return side if model.padding == "same" else side - model.kernel_size + 1


def block_side(side: int, model: DictConfig) -> int:
    """A side after one CNN block: the conv, then 2x2 pooling (which drops an odd last row)."""
    return conv_side(side, model) // 2


def cnn_min_side(model: DictConfig, blocks: int | None = None) -> int:
    """The smallest side the CNN's blocks (the first `blocks` of them) leave at least one pixel
    of: a block leaves n pixels of a side of at least 2n + kernel_size - 1 (valid) or 2n (same)."""
    side = 1
    for _ in range(len(model.channels) if blocks is None else blocks):
        side = 2 * side + (0 if model.padding == "same" else model.kernel_size - 1)
    return side


def _cnn_fixes(model: DictConfig, side: int) -> list[str]:
    """The changes of one CNN option each that make it take images of `side` pixels a side."""
    fixes, pools = [], 2 ** len(model.channels)
    if model.padding == "valid" and pools <= side:
        fixes.append("model.padding=same")
        # the largest kernel k with cnn_min_side = pools + (pools - 1) * (k - 1) <= side
        fixes.append(f"model.kernel_size<={1 + (side - pools) // (pools - 1)}")
    blocks = max((n for n in range(len(model.channels)) if cnn_min_side(model, n) <= side),
                 default=0)
    if blocks >= 1:
        fixes.append(f"at most {blocks} channels {'entry' if blocks == 1 else 'entries'}")
    return fixes


def check_model_fits(model: DictConfig, input_shape: tuple[int, int, int], dataset: str) -> None:
    """Raise ConfigError, in one line, if the model cannot take images of `input_shape` (height,
    width, channels). Only the CNN's pooling needs a minimum size: the MLP takes any image, the
    ResNet's padded strided convs and global pooling any of at least 1x1."""
    height, width, _ = input_shape
    if model.name != "cnn":
        return
    need = cnn_min_side(model)
    if min(height, width) >= need:
        return
    *fixes, last = [*_cnn_fixes(model, min(height, width)), "model=mlp"]
    raise ConfigError(
        f"model=cnn (channels {list(model.channels)}, kernel_size {model.kernel_size}, padding "
        f"{model.padding}) needs images of at least {need}x{need}; data={dataset} has "
        f"{height}x{width}: use {', '.join(fixes)}{',' if len(fixes) > 1 else ''}"
        f"{' or ' if fixes else ''}{last}")
