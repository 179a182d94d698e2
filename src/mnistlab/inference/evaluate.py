"""`python eval.py run=<run dir>`: a finished run's checkpoint evaluated again.

For each run (a sweep directory stands for its runs; `-m run=a,b` evaluates each in a job of
its own) this writes `<run>/eval/<checkpoint>-<data>-<split>/`: metrics.json (accuracy, loss,
per-class accuracy), confusion.csv/.png, wrong.png (the most confidently wrong images) and, with
`eval.robustness`, robustness.csv/.png (accuracy against each transform's strength). The folder
is written aside and renamed into place, so it is whole or absent. A W&B run of job type `eval`
joins the run's group when the run was tracked.

On the run's own data the split, `data.train_subset` and the debug trainer's limits are the
run's, and the logits come at its precision: `eval.split=test` reproduces summary.json's
`test_acc`. `eval.ensemble=true` also averages the runs' softmax outputs (a seed group, say).
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from scipy.special import log_softmax, softmax

from mnistlab.config.checks import check_rules, field_rules
from mnistlab.config.schema import DataConfig
from mnistlab.data import Splits, load_splits
from mnistlab.data.catalog import DatasetSpec
from mnistlab.errors import ConfigError, DataError
from mnistlab.inference.options import STRENGTHS, EvalOptions
from mnistlab.inference.runs import FinishedRun, expand_runs, tracking_group
from mnistlab.inference.transforms import TRANSFORMS, transformed
from mnistlab.plotting import save_png
from mnistlab.run.configs import compose_config
from mnistlab.run.confusion import write_errors
from mnistlab.run.summary import write_json_atomically
from mnistlab.training.contract import Classifier, Predictions

log = logging.getLogger(__name__)


def check_options(opts: DictConfig) -> None:
    """Range rules, the transforms' names and their strengths, before any run is loaded."""
    check_rules(OmegaConf.create({"eval": opts}), field_rules(EvalOptions, "eval."))
    for name in opts.robustness:
        TRANSFORMS[name]  # an unknown name is one line naming the choices
        if not opts.strengths.get(name):
            raise ConfigError(f"eval.robustness has {name}, but eval.strengths.{name} is empty; "
                              f"give its strengths, e.g. {STRENGTHS[name]}")


@dataclass(frozen=True)
class Evaluation:
    """One split of one dataset for one run: the images, labels and the names to write."""

    x: np.ndarray
    y: np.ndarray
    spec: DatasetSpec
    data: str
    split: str


def data_option(name: str, like: DictConfig) -> DictConfig:
    """conf/data/<name>.yaml as the trainers compose it (paths from `like`'s run)."""
    overrides = [f"data={name}", f"paths.data={like.paths.data}"]
    if GlobalHydra.instance().is_initialized():  # inside eval.py's app: Hydra's own search path
        from hydra import compose

        return compose("config", overrides=overrides).data
    return compose_config(overrides).data


def evaluation_data(run: FinishedRun, opts: DictConfig) -> tuple[Evaluation, DatasetSpec]:
    """The images to evaluate on and the run's own dataset spec (the network's input)."""
    own = run.splits()
    data_cfg: DataConfig | DictConfig = run.cfg.data
    splits: Splits = own
    if opts.data is not None and opts.data != run.cfg.data.name:
        data_cfg = data_option(opts.data, run.cfg)
        splits = load_splits(data_cfg)
    theirs, ours = splits.spec, own.spec
    if theirs.input_shape != ours.input_shape:
        raise DataError(f"eval.data={opts.data}: its images are {_shape(theirs)}, but run "
                        f"{run.dir} takes {_shape(ours)}; evaluate on a dataset of that shape")
    if theirs.num_classes != ours.num_classes:
        raise DataError(f"eval.data={opts.data}: it has {theirs.num_classes} classes, the run's "
                        f"model {ours.num_classes}")
    x, y = getattr(splits, f"x_{opts.split}"), getattr(splits, f"y_{opts.split}")
    return Evaluation(x, y, theirs, str(data_cfg.name), opts.split), ours


def _shape(spec: DatasetSpec) -> str:
    h, w, c = spec.input_shape
    return f"{h}x{w}x{c}"


def out_name(opts: DictConfig, ev: Evaluation) -> str:
    checkpoint = opts.checkpoint if opts.checkpoint in ("best", "last") else Path(
        opts.checkpoint).stem
    return f"{checkpoint}-{ev.data}-{ev.split}"


def scores(logits: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, mean cross-entropy (without the L2 term training adds) and accuracy per class."""
    predicted = logits.argmax(axis=1)
    correct = predicted == y
    loss = float(-log_softmax(logits, axis=1)[np.arange(len(y)), y].mean()) if len(y) else math.nan
    per_class = [float(correct[y == k].mean()) if (y == k).any() else None
                 for k in range(num_classes)]
    return {"images": int(len(y)), "accuracy": float(correct.mean()), "loss": loss,
            "per_class_accuracy": per_class}


def robustness(clf: Classifier, ev: Evaluation, opts: DictConfig,
               batch_size: int) -> list[dict[str, Any]]:
    rows = []
    for name in opts.robustness:
        for strength in opts.strengths[name]:
            x = transformed(ev.x, name, float(strength), opts.seed)
            acc = float((clf.logits(x, batch_size).argmax(axis=1) == ev.y).mean())
            rows.append({"transform": name, "strength": float(strength), "accuracy": acc})
            log.info("%s %s: accuracy %.4f", name, strength, acc)
    return rows


def write_robustness(folder: Path, rows: list[dict[str, Any]], title: str) -> None:
    from matplotlib.figure import Figure

    lines = ["transform,strength,accuracy"] + [
        f"{r['transform']},{r['strength']:g},{r['accuracy']:.6f}" for r in rows]
    (folder / "robustness.csv").write_text("\n".join(lines) + "\n")
    names = list(dict.fromkeys(r["transform"] for r in rows))
    fig = Figure(figsize=(3.2 * len(names), 3))
    for i, name in enumerate(names, 1):
        ax = fig.add_subplot(1, len(names), i)
        points = [(r["strength"], r["accuracy"]) for r in rows if r["transform"] == name]
        ax.plot(*zip(*points, strict=True), marker="o")
        ax.set(xlabel=name, ylabel="accuracy" if i == 1 else None, ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: accuracy as the test images change")
    save_png(fig, folder / "robustness.png")


def evaluate_run(run: FinishedRun, opts: DictConfig) -> tuple[dict[str, Any], np.ndarray,
                                                             Evaluation]:
    """Evaluate one run, write its eval folder; returns its metrics, softmax outputs and data."""
    checkpoint = run.checkpoint(opts.checkpoint)
    ev, spec = evaluation_data(run, opts)
    batch_size = opts.batch_size or run.cfg.data.eval_batch_size
    clf = run.backend.load_classifier(run.cfg, spec, checkpoint)
    logits = clf.logits(ev.x, batch_size)
    probs = softmax(logits, axis=1)
    metrics = {"run": str(run.dir), "backend": run.backend.name, "checkpoint": str(checkpoint),
               "data": ev.data, "split": ev.split, "precision": str(run.cfg.trainer.precision),
               **scores(logits, ev.y, ev.spec.num_classes),
               "classes": list(ev.spec.classes),
               "summary_test_acc": run.summary.get("test_acc")}
    rows = robustness(clf, ev, opts, batch_size) if opts.robustness else []
    if rows:
        metrics["robustness"] = rows
    folder = run.dir / "eval" / out_name(opts, ev)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    title = f"{run.name} ({run.backend.name}), {ev.spec.title} {ev.split}"
    predictions = Predictions(labels=probs.argmax(axis=1), confidence=probs.max(axis=1))
    write_errors(tmp, ev.x, ev.y, list(ev.spec.classes), predictions, title)
    if rows:
        write_robustness(tmp, rows, title)
    write_json_atomically(tmp / "metrics.json", metrics)
    if folder.exists():  # an earlier evaluation of the same name: replaced whole
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old)
    else:
        tmp.rename(folder)
    metrics["folder"] = str(folder)
    if opts.track:
        track(run, folder, metrics)
    return metrics, probs, ev


def track(run: FinishedRun, folder: Path, metrics: dict[str, Any]) -> None:
    """A W&B run of job type eval, in the group of the run it evaluates, when that run was
    tracked (it has W&B files)."""
    if run.cfg.logger.name != "wandb" or not (run.dir / "wandb").is_dir():
        return
    from mnistlab.run.tracking import start_wandb

    wandb_run = start_wandb(run.cfg, folder, name=f"eval {run.name} {folder.name}",
                            job_type="eval", tags=["eval", f"backend:{run.backend.name}"],
                            group=tracking_group(run))
    try:
        import wandb

        wandb_run.log({f"eval/{png.stem}": wandb.Image(str(png))
                       for png in sorted(folder.glob("*.png"))})
        wandb_run.summary.update({f"eval/{k}": metrics[k] for k in ("accuracy", "loss")})
        for r in metrics.get("robustness", []):
            wandb_run.summary[f"eval/robustness/{r['transform']}/{r['strength']:g}"] = r[
                "accuracy"]
    finally:
        wandb_run.finish()


def ensemble(members: list[tuple[dict[str, Any], np.ndarray, Evaluation]]) -> dict[str, Any]:
    """The members' averaged softmax outputs against each member's accuracy and their mean."""
    first = members[0][2]
    for metrics, _, ev in members[1:]:
        if ev.y.shape != first.y.shape or not np.array_equal(ev.y, first.y):
            raise DataError(f"eval.ensemble: run {metrics['run']} was evaluated on other images "
                            f"than {members[0][0]['run']} (another split or dataset)")
    mean_probs = np.mean([probs for _, probs, _ in members], axis=0)
    accs = [m["accuracy"] for m, _, _ in members]
    return {"members": {m["run"]: m["accuracy"] for m, _, _ in members},
            "member_mean": float(np.mean(accs)), "member_best": float(np.max(accs)),
            "ensemble": float((mean_probs.argmax(axis=1) == first.y).mean()),
            "data": first.data, "split": first.split, "images": int(len(first.y))}


def print_results(results: list[dict[str, Any]], combined: dict[str, Any] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mnistlab eval", title_justify="left")
    for column in ("run", "backend", "data/split", "images", "accuracy", "loss", "run's test_acc"):
        table.add_column(column)
    for m in results:
        recorded = m["summary_test_acc"]
        table.add_row(Path(m["run"]).name, m["backend"], f"{m['data']}/{m['split']}",
                      str(m["images"]), f"{m['accuracy']:.4f}", f"{m['loss']:.4f}",
                      "-" if recorded is None else f"{recorded:.4f}")
    if combined is not None:
        table.add_row("ensemble", "", f"{combined['data']}/{combined['split']}",
                      str(combined["images"]), f"{combined['ensemble']:.4f}", "",
                      f"members' mean {combined['member_mean']:.4f}")
    console = Console()
    console.print(table)
    for m in results:
        if "robustness" in m:
            console.print(f"{Path(m['run']).name}: " + ", ".join(
                f"{r['transform']} {r['strength']:g}: {r['accuracy']:.4f}"
                for r in m["robustness"]))
        console.print(f"written: {m['folder']}")


def main(cfg: DictConfig) -> float:
    """Hydra task; returns the (last) run's accuracy, or the ensemble's."""
    check_options(cfg.eval)
    runs = expand_runs(OmegaConf.to_container(cfg.run) if OmegaConf.is_list(cfg.run)
                       else str(cfg.run))
    if cfg.eval.ensemble and len(runs) < 2:
        raise ConfigError(f"eval.ensemble=true needs two or more runs; run={cfg.run} gives "
                          f"{len(runs)}")
    for run in runs:  # every run's checkpoint before the first is loaded: one line, no files
        run.checkpoint(cfg.eval.checkpoint)
    members = [evaluate_run(run, cfg.eval) for run in runs]
    combined = ensemble(members) if cfg.eval.ensemble else None
    if combined is not None:
        from hydra.core.hydra_config import HydraConfig

        out = (Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized()
               else Path.cwd())
        write_json_atomically(out / "ensemble.json", combined)
    print_results([m for m, _, _ in members], combined)
    return combined["ensemble"] if combined else members[-1][0]["accuracy"]

