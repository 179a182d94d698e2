"""A finished Lightning run's network, loaded from its checkpoint, for eval, predict and export.

The network is rebuilt from the run's config (`components.build_network`) and given the
checkpoint's weights; the LightningModule is not needed. Logits come at the run's precision
(bf16 autocast for a bf16-mixed run, as trainer.test ran), so a run's own test split reproduces
its test accuracy; `precision="32-true"` gives the fp32 logits an ONNX export is held against.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from mnistlab.backends.lightning.components import as_images, build_network
from mnistlab.data.catalog import DatasetSpec
from mnistlab.errors import DataError
from mnistlab.training.threads import limit_blas, run_threads

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
PREFIX = "net."  # ClassifierModule keeps the network as .net


class ChannelsLastInput(nn.Module):
    """The exported graph's input is (N, H, W, C) floats in [0, 1] on both backends, as Keras'
    models take them; this puts torch's (N, C, H, W) permute inside the graph."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.permute(0, 3, 1, 2))


class LightningClassifier:
    """The network of one checkpoint, in eval mode on the CPU."""

    def __init__(self, cfg: DictConfig, net: nn.Module) -> None:
        self.cfg, self.net = cfg, net.eval()

    @torch.no_grad()
    def logits(self, x: np.ndarray, batch_size: int, precision: str | None = None) -> np.ndarray:
        """uint8 (N, H, W, C) images -> float32 logits (N, classes)."""
        dtype = AUTOCAST.get(str(precision or self.cfg.trainer.precision))
        autocast = (torch.autocast("cpu", dtype=dtype) if dtype is not None
                    else contextlib.nullcontext())
        images = torch.from_numpy(np.ascontiguousarray(x))
        with autocast:
            out = [self.net(as_images(batch)).float() for batch in images.split(batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)

    def export_onnx(self, path: Path, input_shape: tuple[int, int, int]) -> None:
        """fp32 ONNX through torch's exporter (torch.export + onnxscript, torch's current one),
        with a dynamic batch axis."""
        model = ChannelsLastInput(self.net).eval().to(memory_format=torch.contiguous_format)
        example = torch.rand(2, *input_shape)
        batch = torch.export.Dim("batch", min=1)
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=["images"],
                                    output_names=["logits"],
                                    dynamic_shapes={"images": {0: batch}}, verbose=False)
        program.save(str(path))


def load(cfg: DictConfig, spec: DatasetSpec, checkpoint: Path) -> LightningClassifier:
    """The run's network with the checkpoint's weights; DataError naming a file that is not a
    checkpoint of this network."""
    threads = run_threads(cfg.trainer)
    torch.set_num_threads(threads)
    limit_blas(threads)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    except Exception as e:
        raise DataError(f"cannot read checkpoint {checkpoint} ({type(e).__name__}): not a "
                        "Lightning checkpoint of mnistlab") from None
    net = build_network(cfg, spec)
    weights = {k.removeprefix(PREFIX): v for k, v in state.items() if k.startswith(PREFIX)}
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        raise DataError(f"checkpoint {checkpoint} does not fit the run's model "
                        f"({str(e).splitlines()[0]})") from None
    return LightningClassifier(cfg, net)
