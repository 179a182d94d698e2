"""What a dataset is (`DatasetSpec`: classes, image shape, channels, training images), and the
catalog of the IDX family: each one's four files, their official md5s and its classes.

An IDX dataset is an entry here and conf/data/<name>.yaml; a dataset in another format
(data/formats/) is only its YAML: its spec comes from its files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    classes: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)  # IDX: role -> file name
    md5: dict[str, str] = field(default_factory=dict)  # IDX: file name -> md5 of the .gz
    image_shape: tuple[int, int] = (28, 28)  # (height, width)
    train_size: int = 60_000  # training images before the validation split
    channels: int = 1  # 1 (grayscale) or 3 (RGB)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels): what the model builders of both backends take."""
        return (*self.image_shape, self.channels)


def _files(prefix: str = "") -> dict[str, str]:
    return {
        "train_images": f"{prefix}train-images-idx3-ubyte.gz",
        "train_labels": f"{prefix}train-labels-idx1-ubyte.gz",
        "test_images": f"{prefix}t10k-images-idx3-ubyte.gz",
        "test_labels": f"{prefix}t10k-labels-idx1-ubyte.gz",
    }


def known_spec(data: DictConfig) -> DatasetSpec | None:
    """The spec without reading the data: an IDX dataset's; other formats' come from their
    files (None until read)."""
    return DATASETS.get(data.name) if data.format == "idx" else None


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        files=_files(),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        title="Fashion-MNIST",
        files=_files(),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        classes=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
    ),
}
