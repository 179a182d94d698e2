"""An image folder (`data.dir`): `train/<class name>/*.png|jpg|jpeg`, and `test/<class name>/...`
when the user has a test part. Decoded once into arrays and cached under the files' checksums
(with `image_size` and `channels`): a later run reads one .npz instead of decoding every image.

Channels: `data.channels`, else 1 when every image is grayscale and 3 otherwise. Sizes: all
images must share one, unless `data.image_size` ([height, width]) resizes them (bilinear).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mnistlab.data.cache import cache_dir, read_cached, write_cached
from mnistlab.data.formats import FORMATS, Loaded
from mnistlab.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def class_files(part: Path) -> dict[str, list[Path]]:
    """Class name -> its image files, classes in sorted order; one line for an empty class."""
    classes = sorted(p for p in part.iterdir() if p.is_dir())
    files = {}
    for folder in classes:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        if not images:
            raise DataError(f"class folder {folder} has no images (*.png, *.jpg, *.jpeg)")
        files[folder.name] = images
    return files


def checksum(parts: dict[str, dict[str, list[Path]]], root: Path, data: DictConfig) -> str:
    digest = hashlib.sha256(repr((data.image_size and list(data.image_size),
                                  data.channels)).encode())
    for files in parts.values():
        for images in files.values():
            for path in images:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:24]


def decode(parts: dict[str, dict[str, list[Path]]], classes: list[str],
           data: DictConfig) -> dict[str, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    opened: dict[str, list[tuple[Path, Image.Image, int]]] = {}
    for part, files in parts.items():
        opened[part] = []
        for name, images in files.items():
            for path in images:
                try:
                    image = Image.open(path)
                    image.load()
                except (OSError, UnidentifiedImageError) as e:
                    raise DataError(f"unreadable image {path}: {e}") from None
                opened[part].append((path, image, classes.index(name)))
    everything = [item for items in opened.values() for item in items]
    channels = data.channels or (1 if all(im.mode in GRAY_MODES for _, im, _ in everything)
                                 else 3)
    size = tuple(data.image_size) if data.image_size else None  # (height, width)
    if size is None:
        first_path, first, _ = everything[0]
        for path, image, _ in everything:
            if image.size != first.size:
                raise DataError(
                    f"{path} is {image.size[0]}x{image.size[1]} (width x height) but "
                    f"{first_path} is {first.size[0]}x{first.size[1]}; set "
                    "data.image_size=[height,width] to resize every image")
    arrays = {}
    for part, items in opened.items():
        pixels = []
        for _, image, _ in items:
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels.append(np.asarray(image, dtype=np.uint8).reshape(
                image.size[1], image.size[0], channels))
        arrays[f"x_{part}"] = np.stack(pixels)
        arrays[f"y_{part}"] = np.array([label for _, _, label in items], dtype=np.int64)
    return arrays


@FORMATS.register("image_folder")
def load_image_folder(data: DictConfig) -> Loaded:
    root = Path(data.dir).expanduser().resolve()
    if not (root / "train").is_dir():
        raise DataError(f"{root} has no train/ folder; an image folder dataset is "
                        "<dir>/train/<class name>/*.png (and optionally <dir>/test/...)")
    parts = {"train": class_files(root / "train")}
    classes = list(parts["train"])
    if (root / "test").is_dir():
        parts["test"] = class_files(root / "test")
        unknown = sorted(set(parts["test"]) - set(classes))
        if unknown:
            raise DataError(f"{root / 'test'} has class folders that train/ lacks: "
                            f"{', '.join(unknown)}")
    cache = cache_dir() / "image_folder" / f"{checksum(parts, root, data)}.npz"
    arrays = read_cached(cache)
    if arrays is None:
        arrays = decode(parts, classes, data)
        write_cached(cache, **arrays)
    return Loaded(
        title=root.name, classes=tuple(classes),
        x_train=arrays["x_train"], y_train=arrays["y_train"],
        x_test=arrays.get("x_test"), y_test=arrays.get("y_test"),
        files={part: root / part for part in parts},
    ).checked(root)
