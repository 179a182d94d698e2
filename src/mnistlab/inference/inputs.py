"""The images a user hands to `predict.py inputs=<files, folders or globs>`, read and brought to a
trained run's input shape (H, W, C) as uint8, without torch or TensorFlow (an exported model
predicts with numpy and onnxruntime alone).

What is read: .png, .jpg and .jpeg files (through PIL, turned upright by their EXIF orientation)
and .npy arrays (uint8 0..255 or float 0..1; one image (H, W[, C]) or a stack (N, H, W[, C])).
Channels follow the run: gray to RGB repeats the gray, RGB to gray takes PIL's luminance. An
image of another size is resized bilinearly; one already at the run's size keeps its pixels.

Inversion, the MNIST rule: a run trained on light strokes on a dark background
(`dark_background`) would read a digit drawn in black on white paper as noise. So, for such a
run only, an image whose border (its outermost ring of pixels after resizing, all channels) is
light on average (mean above 127.5) is inverted (255 - x), and `Inputs.inverted` says so for
each image. A run trained on dark strokes on a light background inverts nothing.

An input that cannot be used gives one line in `Inputs.problems` and the others are still read:
one bad file among a hundred should not cost the other ninety-nine predictions.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnistlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
_LISTED = "(.png, .jpg, .jpeg, .npy)"
_SHAPES = "expected (H, W), (H, W, C) or a stack (N, H, W[, C]) with C 1 or 3"


@dataclass(frozen=True)
class Inputs:
    """What was read, image by image, and a line for each input that could not be used."""

    names: list[str]  # one per image, in order; a stack in an .npy gives "<file>[i]"
    images: np.ndarray  # uint8 (N, H, W, C) in the run's shape; (0, H, W, C) when none was read
    inverted: list[bool]  # per image: inverted by the rule in the module docstring
    problems: list[str]  # "<path>: <what is wrong>"


def read_inputs(patterns: Sequence[str], input_shape: tuple[int, int, int],
                dark_background: bool) -> Inputs:
    """Read every image the patterns name, in their order, at `input_shape` (H, W, C)."""
    if isinstance(patterns, str):  # `inputs=x.png` arrives as one string, not a list
        patterns = [patterns]
    if not patterns:
        raise DataError("no inputs given; inputs=<files, folders or globs>")
    height, width, channels = (int(n) for n in input_shape)
    if channels not in (1, 3) or height < 1 or width < 1:
        raise ValueError(f"input_shape {tuple(input_shape)} is not (H, W, 1) or (H, W, 3)")
    names: list[str] = []
    images: list[np.ndarray] = []
    problems: list[str] = []
    for name, path, problem in _find(patterns):
        try:
            if path is None:
                raise _Unusable(problem)
            if path.suffix.lower() == ".npy":
                stack, stacked = _read_npy(path, channels)
                names += ([f"{name}[{i}]" for i in range(len(stack))] if stacked else [name])
                images += [_fit(image, height, width) for image in stack]
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(_fit(_read_picture(path, channels), height, width))
                names.append(name)
            else:
                raise _Unusable("not an image (expected .png, .jpg, .jpeg or .npy)")
        except _Unusable as e:
            problems.append(f"{name}: {e}")
    batch = (np.stack(images) if images
             else np.zeros((0, height, width, channels), dtype=np.uint8))
    inverted = (_light_border(batch) if dark_background
                else np.zeros(len(batch), dtype=bool))
    batch[inverted] = 255 - batch[inverted]
    return Inputs(names=names, images=batch, inverted=[bool(b) for b in inverted],
                  problems=problems)


class _Unusable(Exception):
    """One input that cannot be used; its message becomes that input's problem line."""


def _find(patterns: Sequence[str]) -> list[tuple[str, Path | None, str]]:
    """In the patterns' order: (name as found, path, "") for each file to read, each resolved
    path once, and (pattern, None, what is wrong) for a pattern that names nothing usable."""
    found: list[tuple[str, Path | None, str]] = []
    seen: set[Path] = set()

    def add(name: str) -> None:
        key = Path(name).resolve()
        if key not in seen:
            seen.add(key)
            found.append((name, Path(name), ""))

    for pattern in patterns:
        pattern = os.path.expanduser(str(pattern))
        path = Path(pattern)
        if path.is_file():
            add(pattern)
        elif path.is_dir():
            inside = sorted(p.name for p in path.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not inside:
                found.append((pattern, None, f"no images {_LISTED} in this folder"))
            for child in inside:
                add(os.path.join(pattern, child))
        else:
            matches = sorted(glob.glob(pattern, recursive=True))
            usable = [m for m in matches
                      if Path(m).suffix.lower() in IMAGE_SUFFIXES and Path(m).is_file()]
            if not matches:
                found.append((pattern, None, "no such file, folder or matching glob"))
            elif not usable:  # e.g. `dir/*` over subfolders or text files only
                found.append((pattern, None, f"the glob matches no images {_LISTED}"))
            for match in usable:
                add(match)
    return found


def _read_picture(path: Path, channels: int) -> Image.Image:
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)  # a phone photo shows upright: read it so
            return image.convert("L" if channels == 1 else "RGB")
    except UnidentifiedImageError:
        raise _Unusable("not an image (PIL cannot identify its format)") from None
    except OSError as e:
        if e.errno is not None:  # permissions and the like: the file itself may be fine
            raise _Unusable(f"cannot be read ({e.strerror})") from None
        raise _Unusable(f"not an image ({_first_line(e)})") from None
    except Exception as e:  # PIL's decoders raise many kinds on corrupt files
        raise _Unusable(f"not an image ({type(e).__name__}: {_first_line(e)})") from None


def _read_npy(path: Path, channels: int) -> tuple[list[Image.Image], bool]:
    """The array's images as PIL images in the run's mode, and whether the array is a stack."""
    try:
        with open(path, "rb") as file:
            magic = file.read(6)
    except OSError as e:
        raise _Unusable(f"cannot be read ({e.strerror})") from None
    if magic.startswith(b"PK"):  # np.savez's zip archive under an .npy name
        raise _Unusable("is an .npz archive of several arrays; expected one array (np.save)")
    if magic != b"\x93NUMPY":  # else numpy blames pickled data for any other content
        raise _Unusable("not an .npy array (no numpy header; expected a file from np.save)")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises ValueError, OSError, EOFError, ...
        raise _Unusable(f"cannot be read as an .npy array ({_first_line(e)})") from None
    if array.ndim == 2:
        array, stacked = array[None, ..., None], False
    elif array.ndim == 3 and array.shape[-1] in (1, 3):
        array, stacked = array[None], False
    elif array.ndim == 3:  # (N, H, W): a stack of grayscale images
        array, stacked = array[..., None], True
    elif array.ndim == 4 and array.shape[-1] in (1, 3):
        stacked = True
    else:
        raise _Unusable(f"shape {array.shape} is not an image; {_SHAPES}")
    if 0 in array.shape[1:]:
        raise _Unusable(f"shape {array.shape} has no pixels; {_SHAPES}")
    array = _to_uint8(array)
    if array.shape[-1] == channels:
        images = [Image.fromarray(np.ascontiguousarray(a[..., 0] if channels == 1 else a))
                  for a in array]
    elif channels == 3:  # gray to RGB: the gray in every channel
        images = [Image.fromarray(np.ascontiguousarray(np.repeat(a, 3, axis=-1)))
                  for a in array]
    else:  # RGB to gray by PIL's luminance rule, as for an RGB picture
        images = [Image.fromarray(np.ascontiguousarray(a)).convert("L") for a in array]
    return images, stacked


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    expected = "expected uint8 (0..255) or float (0..1)"
    if array.dtype.kind != "f":
        raise _Unusable(f"dtype {array.dtype} is not an image; {expected}")
    if array.size and not np.isfinite(array).all():
        raise _Unusable(f"float values include NaN or infinity; {expected}")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if low < 0 or high > 1:
        raise _Unusable(f"float values run from {low:g} to {high:g}, outside [0, 1]; "
                        f"{expected}")
    return np.rint(array.astype(np.float64) * 255).astype(np.uint8)


def _fit(image: Image.Image, height: int, width: int) -> np.ndarray:
    """The image at (H, W) as a uint8 (H, W, C) array; untouched when already that size."""
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(height, width, -1)


def _light_border(batch: np.ndarray) -> np.ndarray:
    """Per image: whether the mean of its outermost ring of pixels (all channels) is light."""
    ring = np.ones(batch.shape[1:3], dtype=bool)
    ring[1:-1, 1:-1] = False
    if not len(batch):
        return np.zeros(0, dtype=bool)
    return batch[:, ring].mean(axis=(1, 2)) > 127.5


def _first_line(error: BaseException) -> str:
    text = str(error).strip().split("\n")[0] or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
