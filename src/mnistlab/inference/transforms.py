"""The robustness transforms: each moves a whole batch of uint8 (N, H, W, C) images by a
strength, on the arrays, before either backend sees them, so both backends are tested on the
very same pixels. Scipy's ndimage works on the whole stack at once (no per-image loop).

Each fills what it uncovers with 0 (black) and rounds back to uint8:
- rotate: degrees, anticlockwise about the image centre (bilinear);
- shift: a share of the side, right and down at once (a 0.1 shift of 28x28 moves 2.8 px each way);
- noise: Gaussian noise of that standard deviation in units of the full range (0.1 = 25.5 levels),
  drawn from eval.seed, clipped to 0..255;
- hflip, vflip: strength 1 mirrors left-right or top-bottom, 0 leaves the image alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from mnistlab.registry import Registry

Transform = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
TRANSFORMS: Registry[Transform] = Registry("eval.robustness")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@TRANSFORMS.register("rotate")
def rotate(x: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    if degrees == 0:
        return x
    out = ndimage.rotate(x.astype(np.float32), degrees, axes=(2, 1), reshape=False, order=1,
                         mode="constant", cval=0.0)
    return _to_uint8(out)


@TRANSFORMS.register("shift")
def shift(x: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    if share == 0:
        return x
    _, h, w, _ = x.shape
    out = ndimage.shift(x.astype(np.float32), (0, share * h, share * w, 0), order=1,
                        mode="constant", cval=0.0)
    return _to_uint8(out)


@TRANSFORMS.register("noise")
def noise(x: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    if std == 0:
        return x
    return _to_uint8(x + rng.normal(0.0, std * 255, size=x.shape).astype(np.float32))


@TRANSFORMS.register("hflip")
def hflip(x: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(x[:, :, ::-1]) if strength else x


@TRANSFORMS.register("vflip")
def vflip(x: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(x[:, ::-1]) if strength else x


def transformed(x: np.ndarray, name: str, strength: float, seed: int) -> np.ndarray:
    """`x` moved by transform `name` at `strength`; the noise's stream depends on the seed and
    the strength only, so every run of a comparison sees the same noisy images."""
    rng = np.random.default_rng([seed, int(round(strength * 1e6))])
    return TRANSFORMS[name](x, strength, rng)
