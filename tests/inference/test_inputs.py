"""Reading the images a user hands to predict.py: files, folders and globs, PNG/JPEG/.npy, brought
to the run's shape, inverted by the MNIST rule, and one problem line per input that cannot be used
while the others are still read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab.errors import DataError
from mnistlab.inference.inputs import read_inputs

MNIST = (28, 28, 1)


def digit(background: int, stroke: int, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """A uint8 (H, W) "1": a vertical bar in the middle, on a plain background."""
    image = np.full(size, background, dtype=np.uint8)
    image[4:-4, size[1] // 2 - 2:size[1] // 2 + 2] = stroke
    return image


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def test_png_at_the_runs_shape_is_read_bit_identically(tmp_path):
    pixels = noise((28, 28))
    path = save(tmp_path / "a.png", pixels)
    inputs = read_inputs([str(path)], MNIST, dark_background=False)
    assert inputs.names == [str(path)]
    assert inputs.images.dtype == np.uint8 and inputs.images.shape == (1, 28, 28, 1)
    np.testing.assert_array_equal(inputs.images[0, ..., 0], pixels)
    assert inputs.inverted == [False] and inputs.problems == []


def test_rgb_jpeg_into_a_gray_run_becomes_gray_and_resized(tmp_path):
    rgb = np.zeros((56, 40, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # a plain red: JPEG keeps a flat colour almost exactly
    path = tmp_path / "red.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    inputs = read_inputs([str(path)], MNIST, dark_background=False)
    assert inputs.images.shape == (1, 28, 28, 1)
    expected = np.asarray(Image.open(path).convert("L").resize((28, 28),
                                                               Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(inputs.images[0, ..., 0], expected)
    assert abs(int(np.median(inputs.images)) - 200 * 299 // 1000) <= 2  # luminance, not red


def test_gray_png_into_an_rgb_run_repeats_the_gray(tmp_path):
    pixels = noise((32, 32))
    path = save(tmp_path / "g.png", pixels)
    inputs = read_inputs([str(path)], (32, 32, 3), dark_background=False)
    assert inputs.images.shape == (1, 32, 32, 3)
    for c in range(3):
        np.testing.assert_array_equal(inputs.images[0, ..., c], pixels)


def test_a_folder_and_a_glob_in_order_each_file_once(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    for name in ("b.png", "a.png", "c.jpeg"):
        save(folder / name, digit(0, 255))
    (folder / "notes.txt").write_text("not an image")
    other = tmp_path / "more"
    other.mkdir()
    save(other / "z.png", digit(0, 255))
    save(other / "y.png", digit(0, 255))
    # The glob reaches digits/a.png a second time: read once.
    inputs = read_inputs([str(folder), str(tmp_path / "**" / "[ay].png")], MNIST, True)
    assert inputs.names == [str(folder / "a.png"), str(folder / "b.png"),
                            str(folder / "c.jpeg"), str(other / "y.png")]
    assert inputs.images.shape == (4, 28, 28, 1)
    assert inputs.problems == []


def test_light_background_digit_is_inverted_only_for_a_dark_background_run(tmp_path):
    pixels = digit(255, 0, size=(40, 30))  # black stroke on white paper, another size
    path = save(tmp_path / "paper.png", pixels)
    kept = read_inputs([str(path)], MNIST, dark_background=False)
    flipped = read_inputs([str(path)], MNIST, dark_background=True)
    assert kept.inverted == [False] and flipped.inverted == [True]
    np.testing.assert_array_equal(flipped.images, 255 - kept.images)
    assert flipped.images[0, 0, 0, 0] == 0 and flipped.images[0, 14, 14, 0] == 255


def test_dark_background_digit_is_not_inverted(tmp_path):
    pixels = digit(0, 255)
    path = save(tmp_path / "mnist.png", pixels)
    inputs = read_inputs([str(path)], MNIST, dark_background=True)
    assert inputs.inverted == [False]
    np.testing.assert_array_equal(inputs.images[0, ..., 0], pixels)


def test_border_is_the_outer_ring_only(tmp_path):
    """A light centre on a dark ring is a dark background, however much of the image is light."""
    pixels = np.full((28, 28), 255, dtype=np.uint8)
    pixels[[0, -1], :] = 0
    pixels[:, [0, -1]] = 0
    inputs = read_inputs([str(save(tmp_path / "ring.png", pixels))], MNIST, True)
    assert inputs.inverted == [False]


def test_npy_single_images_uint8_and_float(tmp_path):
    pixels = noise((28, 28))
    np.save(tmp_path / "u8.npy", pixels)
    np.save(tmp_path / "f.npy", (pixels / 255.0).astype(np.float32)[..., None])  # (H, W, 1)
    np.save(tmp_path / "rgb.npy", np.repeat(pixels[..., None], 3, axis=-1))  # gray as RGB
    inputs = read_inputs([str(tmp_path / n) for n in ("u8.npy", "f.npy", "rgb.npy")], MNIST,
                         dark_background=False)
    assert inputs.problems == []
    assert inputs.names == [str(tmp_path / n) for n in ("u8.npy", "f.npy", "rgb.npy")]
    for image in inputs.images:
        np.testing.assert_array_equal(image[..., 0], pixels)


def test_npy_stack_gives_one_name_per_image(tmp_path):
    stack = noise((5, 14, 14), seed=1)
    path = tmp_path / "stack.npy"
    np.save(path, stack)
    inputs = read_inputs([str(path)], MNIST, dark_background=False)
    assert inputs.names == [f"{path}[{i}]" for i in range(5)]
    assert inputs.images.shape == (5, 28, 28, 1)
    expected = np.asarray(Image.fromarray(stack[3]).resize((28, 28), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(inputs.images[3, ..., 0], expected)


def test_rgb_npy_stack_into_a_gray_run_uses_pils_luminance(tmp_path):
    stack = noise((2, 28, 28, 3), seed=2)
    np.save(tmp_path / "rgb.npy", stack)
    inputs = read_inputs([str(tmp_path / "rgb.npy")], MNIST, dark_background=False)
    expected = np.asarray(Image.fromarray(stack[1]).convert("L"))
    np.testing.assert_array_equal(inputs.images[1, ..., 0], expected)


def test_each_bad_input_gives_one_line_and_the_good_ones_are_still_read(tmp_path):
    good = save(tmp_path / "good.png", digit(0, 255))
    text_png = tmp_path / "x.png"
    text_png.write_text("hello, not a picture")
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(5, dtype=np.uint8))
    bright = tmp_path / "bright.npy"
    np.save(bright, np.full((28, 28), 3.0))
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.png"
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    bad = [text_png, flat, bright, empty, missing, notes]
    inputs = read_inputs([str(p) for p in [bad[0], good, *bad[1:]]], MNIST, True)
    assert inputs.names == [str(good)]
    assert inputs.images.shape == (1, 28, 28, 1)
    assert len(inputs.problems) == len(bad)
    for path in bad:
        assert sum(line.startswith(f"{path}: ") for line in inputs.problems) == 1, path
    assert [line.split(": ", 1)[0] for line in inputs.problems] == [str(p) for p in bad]  # order
    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in inputs.problems}
    assert lines[str(text_png)].startswith("not an image (")
    assert lines[str(flat)] == ("shape (5,) is not an image; expected (H, W), (H, W, C) or a "
                                "stack (N, H, W[, C]) with C 1 or 3")
    assert "[0, 1]" in lines[str(bright)]
    assert lines[str(empty)] == "no images (.png, .jpg, .jpeg, .npy) in this folder"
    assert lines[str(missing)] == "no such file, folder or matching glob"
    assert lines[str(notes)] == "not an image (expected .png, .jpg, .jpeg or .npy)"


@pytest.mark.parametrize("array", [np.zeros((28, 28), dtype=bool), np.array([["a"]]),
                                   np.zeros((2, 2, 28, 28, 1), dtype=np.uint8),
                                   np.zeros((2, 28, 28, 4), dtype=np.uint8),
                                   np.full((28, 28), np.nan), np.full((28, 28), -0.5)],
                         ids=["bool", "strings", "5-D", "4 channels", "nan", "negative"])
def test_npy_arrays_that_are_not_images(tmp_path, array):
    path = tmp_path / "x.npy"
    np.save(path, array)
    inputs = read_inputs([str(path)], MNIST, dark_background=False)
    assert inputs.images.shape == (0, 28, 28, 1) and inputs.names == []
    assert len(inputs.problems) == 1 and inputs.problems[0].startswith(f"{path}: ")



def test_npy_files_that_are_not_arrays(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    np.savez(tmp_path / "many.npz", a=np.zeros((28, 28), dtype=np.uint8))
    (tmp_path / "many.npz").rename(tmp_path / "many.npy")
    inputs = read_inputs([str(tmp_path / "junk.npy"), str(tmp_path / "many.npy")], MNIST, True)
    assert inputs.problems == [
        f"{tmp_path / 'junk.npy'}: not an .npy array (no numpy header; expected a file from "
        "np.save)",
        f"{tmp_path / 'many.npy'}: is an .npz archive of several arrays; expected one array "
        "(np.save)"]


def test_nothing_readable_gives_an_empty_batch_in_the_runs_shape(tmp_path):
    inputs = read_inputs([str(tmp_path / "*.png")], (32, 32, 3), dark_background=True)
    assert inputs.images.shape == (0, 32, 32, 3) and inputs.images.dtype == np.uint8
    assert inputs.names == [] and inputs.inverted == []
    assert inputs.problems == [f"{tmp_path / '*.png'}: no such file, folder or matching glob"]


def test_one_string_is_one_pattern(tmp_path):
    path = save(tmp_path / "a.png", digit(0, 255))
    assert read_inputs(str(path), MNIST, dark_background=False).names == [str(path)]


def test_no_patterns_is_an_error():
    with pytest.raises(DataError, match="no inputs given"):
        read_inputs([], MNIST, dark_background=True)


def test_imports_neither_torch_nor_tensorflow():
    """predict.py with an exported model runs where neither framework is installed."""
    code = ("import sys, mnistlab.inference.inputs\n"
            "loaded = {'torch', 'tensorflow', 'keras'} & set(sys.modules)\n"
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
