"""What each dataset is: its four IDX files, their official md5s, its image shape and classes.

This dict is the dataset registry: adding a dataset means an entry here and conf/data/<name>.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    files: dict[str, str]  # role -> file name
    md5: dict[str, str]  # file name -> md5 of the official .gz, checked on download
    classes: tuple[str, ...]
    image_shape: tuple[int, int] = (28, 28)  # (height, width), one channel
    train_size: int = 60_000  # images in the official training file, before the val split

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _files(prefix: str = "") -> dict[str, str]:
    return {
        "train_images": f"{prefix}train-images-idx3-ubyte.gz",
        "train_labels": f"{prefix}train-labels-idx1-ubyte.gz",
        "test_images": f"{prefix}t10k-images-idx3-ubyte.gz",
        "test_labels": f"{prefix}t10k-labels-idx1-ubyte.gz",
    }


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
