"""The IDX family (MNIST, Fashion-MNIST): four gzip files in `data.dir`, downloaded from the
mirrors when missing and md5-checked; what each dataset is lives in `data/catalog.py`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mnistlab.data.catalog import DATASETS, ROLES
from mnistlab.data.download import ensure_files
from mnistlab.data.formats import FORMATS, Loaded
from mnistlab.data.idx import read_idx


@FORMATS.register("idx")
def load_idx(data: DictConfig) -> Loaded:
    spec = DATASETS[data.name]
    folder = Path(data.dir).expanduser().resolve()
    ensure_files(folder, [spec.files[r] for r in ROLES], spec.md5, list(data.mirrors),
                 data.download)
    arrays = {role: read_idx(folder / spec.files[role], 3 if "images" in role else 1)
              for role in ROLES}
    return Loaded(
        title=spec.title, classes=spec.classes,
        x_train=arrays["train_images"][..., None], y_train=arrays["train_labels"].astype(np.int64),
        x_test=arrays["test_images"][..., None], y_test=arrays["test_labels"].astype(np.int64),
        files={r: folder / spec.files[r] for r in ROLES},
    ).checked(folder)
