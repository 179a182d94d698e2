"""scikit-learn's 8x8 handwritten digits (1,797 images, 16 grey levels), shipped inside
scikit-learn: a real dataset that needs no download. It has no test part: the split cuts one."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from mnistlab.data.formats import FORMATS, Loaded


@FORMATS.register("digits")
def load_digits(data: DictConfig) -> Loaded:
    from sklearn.datasets import load_digits as sklearn_digits  # slow import: only when used

    digits = sklearn_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., None]  # 0..16 -> 0..255
    return Loaded(
        title="scikit-learn digits", classes=tuple(str(d) for d in range(10)),
        x_train=images, y_train=digits.target.astype(np.int64), x_test=None, y_test=None,
        files={},
    ).checked("sklearn.datasets.load_digits")
