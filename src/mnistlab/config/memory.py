"""Will the run fit in memory? An estimate of a run's peak resident memory from its batch size,
its network and its data, checked before any data is read, so that `data.batch_size=50000` on a
small machine is one line instead of the kernel's OOM kill minutes later.

The estimate, in bytes (float32 everywhere):
- FRAMEWORK_BYTES for the interpreter, torch or TensorFlow and their pools: 1.22-1.30 GB
  measured at the end of debug runs on both backends;
- the data: every image (all its channels) once as uint8 and once as float32 (Keras' float
  copy of an epoch);
- the training batch: each sample's activations (every layer's output, the input included)
  kept for the backward pass, ACTIVATION_FACTOR times over for their gradients and the
  augmentation's temporaries. Fitted to one measurement: the default CNN at batch 50,000 peaked
  at 10.9 GB resident on Lightning, ~190 KB a sample against its 162 KB of activations; the
  estimate is then 11.3 GB. The MLP and the ResNet are counted the same way (each layer's
  output once, in-place ReLUs free) and take the CNN's factor, unmeasured for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from mnistlab.config.shapes import conv_side
from mnistlab.data.catalog import DatasetSpec
from mnistlab.errors import ConfigError

FRAMEWORK_BYTES = 1.3e9
FLOAT = 4
ACTIVATION_FACTOR = 1.2
GB = 1e9


def cnn_activations(model: DictConfig, input_shape: tuple[int, int, int], classes: int) -> int:
    """Values one sample's forward pass keeps: input, each conv, pooling (and BN) output, the
    flattened, dropped-out and dense layers, the logits."""
    height, width, channels = input_shape
    total = height * width * channels
    for ch in model.channels:
        height, width = conv_side(height, model), conv_side(width, model)
        total += ch * height * width  # conv (+ ReLU in place)
        height, width = height // 2, width // 2
        total += ch * height * width * (2 if model.batch_norm else 1)  # pooling (and BN)
        channels = ch
    flat = channels * height * width
    return total + 2 * flat + model.dense_units + classes


def mlp_activations(model: DictConfig, input_shape: tuple[int, int, int], classes: int) -> int:
    """Input, flattened input, each hidden layer's dense (+ ReLU) and dropout outputs, logits."""
    return 2 * math.prod(input_shape) + sum(2 * units for units in model.hidden) + classes


def resnet_activations(model: DictConfig, input_shape: tuple[int, int, int],
                       classes: int) -> int:
    """Input; the stem's conv and BN (+ ReLU); per block two convs, two BNs and the sum (+ ReLU),
    and a downsampling block's 1x1 conv and BN; the pooled features; the logits."""
    height, width, channels = input_shape
    total = height * width * channels + 2 * model.widths[0] * height * width
    for stage, ch in enumerate(model.widths):
        for block in range(model.blocks):
            if stage > 0 and block == 0:  # stride 2, padded: ceil(side / 2)
                height, width = -(-height // 2), -(-width // 2)
                total += 2 * ch * height * width  # the projection's conv and BN
            total += 5 * ch * height * width
    return total + model.widths[-1] + classes


ACTIVATIONS: dict[str, Callable[[DictConfig, tuple[int, int, int], int], int]] = {
    "cnn": cnn_activations, "mlp": mlp_activations, "resnet": resnet_activations}


def available_memory() -> float:
    """Bytes this process may still use: the machine's available memory, or less under a cgroup
    limit (a Slurm job's, a container's)."""
    import psutil

    available = float(psutil.virtual_memory().available)
    limit, usage = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    try:
        if limit.read_text().strip() != "max":
            available = min(available, int(limit.read_text()) - int(usage.read_text()))
    except (OSError, ValueError):
        pass
    return available


def check_memory(cfg: DictConfig, spec: DatasetSpec) -> None:
    activations = ACTIVATIONS.get(cfg.model.name)
    if activations is None:  # an unknown model: its name's check says so
        return
    per_sample = (activations(cfg.model, spec.input_shape, spec.num_classes) * FLOAT
                  * ACTIVATION_FACTOR)
    images = spec.train_size + 10_000  # the training file and about a test set's
    base = FRAMEWORK_BYTES + images * math.prod(spec.input_shape) * (1 + FLOAT)
    needed = base + cfg.data.batch_size * per_sample
    available = available_memory()
    if needed > available:
        fits = max(0, int((available - base) // per_sample))
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} needs about {needed / GB:.1f} GB "
            f"({per_sample / 1e3:.0f} KB a sample, plus {base / GB:.1f} GB for the frameworks and "
            f"the data), more than the {available / GB:.1f} GB available here; a batch of at most "
            f"{fits} fits")
