"""Exploratory data analysis: ``python -m mnistlab.eda [data=fashion_mnist] [logger=none]``.

Redoes the study's EDA figures on exactly the split the trainers use (``load_splits``, so
``data.val_size`` and ``data.split_seed`` apply), for any dataset (any classes, any H x W, gray or
RGB), and writes into ``outputs/eda/<time>/``:

- ``class_counts.png``: images per class in train, validation and test;
- ``samples.png``: ``samples_per_class`` random images per class;
- ``mean_images.png``: each class's mean image, with its pixel mean ± std;
- ``outliers.png`` and ``outliers.csv``: per class, the ``outliers_per_class`` images farthest
  from the class mean (Euclidean distance, pixels in [0, 1]; kind ``farthest_from_mean``) and
  every image whose ink (the sum of its pixels in [0, 1]) lies beyond ``iqr_factor`` IQR of its
  class's quartiles (kind ``ink_high`` or ``ink_low``);
- ``stats.json``: the image shape, counts per split and class, pixel mean and std overall and per
  class, the outliers per class, and the data read (the sha256 of each file; a folder by its path).

Pixel statistics and outliers cover the training images as the split keeps them, train +
validation (for MNIST the official training file, all 60,000 images unless ``data.train_subset``
trims train: the set SOURCE.md's 0.1307/0.3081 describe), and an odd image matters on whichever
side of the split it lands; an RGB image's pixels are those of its three channels. The test set is
only counted, so that nothing here is tuned on it. ``index`` is an image's position in the
training images (MNIST's official training file); ``split`` says whether the trainers see it as
train or val.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from mnistlab.config.checks import RULES, check_added_keys, check_rules, field_rules
from mnistlab.config.schema import DataConfig, LoggerConfig, PathsConfig, ranged
from mnistlab.data import Splits, load_splits
from mnistlab.eda.plots import (
    ClassOutliers,
    Tile,
    plot_class_counts,
    plot_mean_images,
    plot_outliers,
    plot_samples,
)
from mnistlab.errors import DataError
from mnistlab.run.lifecycle import Job, Tracking, run_job
from mnistlab.run.summary import write_json_atomically

log = logging.getLogger(__name__)
FIGURES = ("class_counts", "samples", "mean_images", "outliers")
CSV_COLUMNS = ("label", "class", "kind", "rank", "index", "split", "score")


MAX_COLUMNS = 100  # images per class in a figure row: beyond this the PNG gets too large to draw


def _per_class(default: int) -> int:
    return ranged(default, check=lambda v: 1 <= v <= MAX_COLUMNS,
                  allowed=f"an integer from 1 to {MAX_COLUMNS}")


@dataclass
class EdaConfig:
    """Schema of conf/eda.yaml: Hydra rejects misspelt keys and wrong types before anything runs;
    each field's range rule is checked before any data is read."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = MISSING
    logger: LoggerConfig = MISSING
    samples_per_class: int = _per_class(10)  # random images per class in samples.png
    # K: the K farthest from the class mean, and the ink outliers drawn
    outliers_per_class: int = _per_class(5)
    # ink outside [Q1 - f*IQR, Q3 + f*IQR] of its class is an outlier (Tukey)
    iqr_factor: float = ranged(1.5, check=lambda v: v >= 0, allowed="a number >= 0")
    # picks samples.png's images; the split itself follows data.split_seed
    seed: int = ranged(42, check=lambda v: v >= 0, allowed="an integer >= 0")


ConfigStore.instance().store(name="eda_schema", node=EdaConfig)


def validate_eda(cfg: DictConfig) -> None:
    """The trainers' rules for the keys shared with them (data.*, logger.*), then the EDA's own."""
    check_rules(cfg, [*RULES, *field_rules(EdaConfig)])
    check_added_keys(cfg)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, str]:
    """A data file's path and sha256; a folder (an image folder's train/) by its path only, since
    hashing every image in it would cost as much as the EDA."""
    return {"path": str(path), "sha256": sha256(path)} if path.is_file() else {"path": str(path)}


def training_source(splits: Splits) -> str:
    """What an image's `index` counts in, for captions: a catalogued (IDX) dataset's official
    training file, else the training images its format read."""
    return "the official training file" if splits.spec.md5 else "the training images"


@dataclass(frozen=True)
class Pool:
    """The training images as the split keeps them (train + val), in file order."""

    x: np.ndarray  # uint8 (N, H, W, C)
    y: np.ndarray  # int64 labels
    index: np.ndarray  # position in the training images
    split: np.ndarray  # "train" or "val"


def training_pool(s: Splits) -> Pool:
    index = np.concatenate([s.train_index, s.val_index])
    order = np.argsort(index, kind="stable")
    split = np.repeat(np.array(["train", "val"]), [len(s.train_index), len(s.val_index)])
    return Pool(
        x=np.concatenate([s.x_train, s.x_val])[order],
        y=np.concatenate([s.y_train, s.y_val])[order],
        index=index[order],
        split=split[order],
    )


@dataclass(frozen=True)
class ClassStats:
    """One class of the pool. Arrays are per member; `farthest`/`ink_outliers` index into them."""

    label: int
    members: np.ndarray  # pool positions of the class's images, in file order
    mean_image: np.ndarray  # (H, W, C), pixels in [0, 1]
    pixel_mean: float
    pixel_std: float
    ink: np.ndarray  # sum of each image's pixels in [0, 1]
    distance: np.ndarray  # Euclidean distance of each image from mean_image
    q1: float
    q3: float
    low: float  # ink below this is an outlier
    high: float  # ink above this is an outlier
    farthest: np.ndarray  # the K largest distances, farthest first (ties: file order)
    ink_outliers: np.ndarray  # ink beyond [low, high], farthest beyond its fence first


def class_stats(pool: Pool, label: int, k: int, iqr_factor: float) -> ClassStats:
    """Everything per class in one vectorised pass over that class's images."""
    members = np.flatnonzero(pool.y == label)
    if not len(members):
        raise DataError(f"class {label} has no image among the training images; wrong dataset?")
    flat = pool.x[members].reshape(len(members), -1).astype(np.float32) / 255
    mean_image = flat.mean(axis=0, dtype=np.float64)
    ink = flat.sum(axis=1, dtype=np.float64)
    distance = np.linalg.norm(flat - mean_image.astype(np.float32), axis=1)
    q1, q3 = (float(q) for q in np.percentile(ink, [25, 75]))
    low, high = q1 - iqr_factor * (q3 - q1), q3 + iqr_factor * (q3 - q1)
    beyond = np.maximum(low - ink, ink - high)
    ink_outliers = np.flatnonzero(beyond > 0)
    return ClassStats(
        label=label, members=members, mean_image=mean_image.reshape(pool.x.shape[1:]),
        pixel_mean=float(flat.mean(dtype=np.float64)), pixel_std=float(flat.std(dtype=np.float64)),
        ink=ink, distance=distance, q1=q1, q3=q3, low=low, high=high,
        farthest=np.argsort(-distance, kind="stable")[:k],
        ink_outliers=ink_outliers[np.argsort(-beyond[ink_outliers], kind="stable")],
    )


def pooled_pixels(per_class: list[ClassStats]) -> tuple[float, float]:
    """Overall pixel mean and std from the per-class ones (every image has as many pixels)."""
    n = np.array([len(c.members) for c in per_class], dtype=np.float64)
    mean = np.array([c.pixel_mean for c in per_class])
    std = np.array([c.pixel_std for c in per_class])
    overall = float(n @ mean / n.sum())
    square = float(n @ (std**2 + mean**2) / n.sum())
    return overall, float(np.sqrt(max(square - overall**2, 0.0)))


def outlier_rows(pool: Pool, per_class: list[ClassStats], classes: list[str]) -> list[dict]:
    """outliers.csv: one row per (image, reason); loops over the outliers only, not the images."""
    rows = []
    for c in per_class:
        found = [("farthest_from_mean", m, float(c.distance[m])) for m in c.farthest]
        found += [("ink_high" if c.ink[m] > c.high else "ink_low", m, float(c.ink[m]))
                  for m in c.ink_outliers]
        ranks = {"farthest_from_mean": 0, "ink": 0}
        for kind, member, score in found:
            group = "ink" if kind.startswith("ink") else kind
            ranks[group] += 1
            pos = c.members[member]
            rows.append({"label": c.label, "class": classes[c.label], "kind": kind,
                         "rank": ranks[group], "index": int(pool.index[pos]),
                         "split": str(pool.split[pos]), "score": round(score, 4)})
    return rows


def build_stats(cfg: DictConfig, splits: Splits, counts: dict[str, list[int]],
                per_class: list[ClassStats], rows: list[dict]) -> dict[str, Any]:
    classes, source = list(splits.spec.classes), training_source(splits)
    channels = splits.x_train.shape[-1]
    over = f"train+val ({source}), pixel values / 255"
    mean, std = pooled_pixels(per_class)
    return {
        "dataset": cfg.data.name,
        "classes": classes,
        "input_shape": list(splits.x_train.shape[1:]),  # height, width, channels
        "split": {"val_size": cfg.data.val_size, "split_seed": cfg.data.split_seed,
                  "train_subset": cfg.data.train_subset},
        "counts": counts,  # split -> count per class, in label order
        "totals": {split: sum(values) for split, values in counts.items()},
        "pixels": {
            "over": over if channels == 1 else f"{over}, all {channels} channels",
            "mean": round(mean, 6),
            "std": round(std, 6),
            "per_class": [{"label": c.label, "class": classes[c.label],
                           "mean": round(c.pixel_mean, 6), "std": round(c.pixel_std, 6)}
                          for c in per_class],
        },
        "outliers": {
            "over": f"train+val; index = position in {source}",
            "outliers_per_class": cfg.outliers_per_class,
            "iqr_factor": cfg.iqr_factor,
            "per_class": [{
                "label": c.label, "class": classes[c.label],
                "ink_q1": round(c.q1, 4), "ink_q3": round(c.q3, 4),
                "ink_low": round(c.low, 4), "ink_high": round(c.high, 4),
                "farthest_from_mean": [{k: r[k] for k in ("index", "split", "score")}
                                       for r in rows if r["label"] == c.label
                                       and r["kind"] == "farthest_from_mean"],
                "ink": [{k: r[k] for k in ("index", "split", "kind", "score")}
                        for r in rows if r["label"] == c.label and r["kind"].startswith("ink")],
            } for c in per_class],
        },
        "files": {role: file_record(path) for role, path in splits.files.items()},
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def draw_figures(cfg: DictConfig, splits: Splits, pool: Pool, counts: dict[str, list[int]],
                 per_class: list[ClassStats], run_dir: Path) -> dict[str, Path]:
    classes, title, source = list(splits.spec.classes), splits.spec.title, training_source(splits)
    paths = {name: run_dir / f"{name}.png" for name in FIGURES}
    plot_class_counts(counts, classes, title, paths["class_counts"])

    rng = np.random.default_rng(cfg.seed)
    picks = [np.sort(rng.choice(c.members, min(cfg.samples_per_class, len(c.members)),
                                replace=False)) for c in per_class]
    plot_samples([[Tile(pool.x[p], f"#{pool.index[p]}") for p in pick] for pick in picks],
                 classes, title, source, paths["samples"])

    plot_mean_images([c.mean_image for c in per_class], [c.pixel_mean for c in per_class],
                     [c.pixel_std for c in per_class], [len(c.members) for c in per_class],
                     classes, title, paths["mean_images"])

    def tile(c: ClassStats, member: int, score: str) -> Tile:
        pos = c.members[member]
        return Tile(pool.x[pos], f"#{pool.index[pos]} ({pool.split[pos]})\n{score}")

    k = cfg.outliers_per_class
    views = [ClassOutliers(
        name=classes[c.label], ink=c.ink, ink_outlier_ink=c.ink[c.ink_outliers],
        farthest_ink=c.ink[c.farthest],
        farthest_tiles=[tile(c, m, f"d = {c.distance[m]:.2f}") for m in c.farthest],
        ink_tiles=[tile(c, m, f"ink = {c.ink[m]:.0f}") for m in c.ink_outliers[:k]],
    ) for c in per_class]
    plot_outliers(views, cfg.iqr_factor, title, source, paths["outliers"])
    return paths


def log_to_wandb(run: Any, figures: dict[str, Path], stats: dict[str, Any],
                 rows: list[dict]) -> None:
    """Figures as images; per-class stats and the outliers as tables; totals in the summary."""
    import wandb

    counts, pixels, outliers = stats["counts"], stats["pixels"], stats["outliers"]["per_class"]
    columns = ["label", "class", *counts, "pixel_mean", "pixel_std", "ink_q1", "ink_q3",
               "ink_outliers"]
    table = [[p["label"], p["class"], *(counts[s][p["label"]] for s in counts), p["mean"],
              p["std"], o["ink_q1"], o["ink_q3"], len(o["ink"])]
             for p, o in zip(pixels["per_class"], outliers, strict=True)]
    run.log({
        **{f"figures/{name}": wandb.Image(str(path)) for name, path in figures.items()},
        "tables/class_stats": wandb.Table(columns=columns, data=table),
        "tables/outliers": wandb.Table(columns=list(CSV_COLUMNS),
                                    data=[[r[c] for c in CSV_COLUMNS] for r in rows]),
    })
    run.summary.update({"pixel_mean": pixels["mean"], "pixel_std": pixels["std"],
                        **{f"images/{s}": n for s, n in stats["totals"].items()}})


def explore(cfg: DictConfig, splits: Splits,
            run_dir: Path) -> tuple[dict[str, Path], dict[str, Any], list[dict]]:
    """Compute everything and write every file; returns the figures, stats and outlier rows."""
    classes = list(splits.spec.classes)
    counts = {split: np.bincount(y, minlength=len(classes)).tolist()
              for split, y in (("train", splits.y_train), ("val", splits.y_val),
                               ("test", splits.y_test))}
    pool = training_pool(splits)
    per_class = [class_stats(pool, label, cfg.outliers_per_class, cfg.iqr_factor)
                 for label in range(len(classes))]
    rows = outlier_rows(pool, per_class, classes)
    stats = build_stats(cfg, splits, counts, per_class, rows)
    write_csv(run_dir / "outliers.csv", rows)
    figures = draw_figures(cfg, splits, pool, counts, per_class, run_dir)
    write_json_atomically(run_dir / "stats.json", stats)  # last: its presence means complete
    return figures, stats, rows


def main(cfg: DictConfig) -> None:
    """Hydra task, under the same lifecycle as training: bad input removes the run dir and exits
    with one `error:` line; stats.json, written last, marks a complete EDA."""

    def prepare(job: Job) -> Splits:
        validate_eda(cfg)
        return load_splits(cfg.data)

    def execute(job: Job, splits: Splits) -> None:
        figures, stats, rows = explore(cfg, splits, job.run_dir)
        if job.wandb_run is not None:
            log_to_wandb(job.wandb_run, figures, stats, rows)
        log.info("EDA of %s (%s images; %d outlier rows) written to %s", splits.spec.title,
                 stats["totals"], len(rows), job.run_dir)

    run_job(cfg, prepare=prepare, execute=execute, finish=lambda job: None,
            tracking=Tracking(job_type="eda", tags=["eda", f"data:{cfg.data.name}"],
                              default_name=f"eda {cfg.data.name}"))

