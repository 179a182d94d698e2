"""`python -m mnistlab.bench`: how fast mnistlab trains and evaluates, beside a bare loop.

For each backend, every run gets the same overrides (recipe, epochs, batch size, subset, device):

- samples/s (mnistlab): `python train.py` as a user runs it (logger=none, no progress bar): training
  samples / the fastest warm epoch's metrics.csv epoch_seconds, which time the epoch's training
  batches and its validation pass; the first epoch (warm-up) is left out unless it is the only
  one, and only the epochs that every run trained count (trainer.stop_at_val_acc may end one
  early).
- samples/s (bare): the same figure for `mnistlab.bench.bare`'s loop of the same recipe in the
  same framework, timed over the same span (training batches and the validation pass).
- ratio (pairs): mnistlab's speed over the bare loop's, the median over the pairs of warm epochs
  (epoch k of a train.py run and epoch k of the bare run beside it, which trained in turns over
  the same stretch of time); in brackets the lowest and highest pair.
- eval samples/s (mnistlab): validation samples / the shortest epoch_seconds of epochs 2-4 of a
  train.py run with trainer.limit_train_batches=1: mnistlab's warm validation pass (and one
  training batch), the fastest of three.
- eval samples/s (bare): validation samples / the fastest of the bare loop's three warm
  validation passes after training (the fastest, as for training: one pass can be slowed by
  what else the machine does).
- s to first batch: the evaluation run's summary.json seconds_to_first_batch, from its process
  start (interpreter, imports, data, model) to its first training batch: a run with the CPU to
  itself.
- spread (bare): how much slower each side's slowest timed epoch was than its fastest, in all
  its runs: the same code, moved only by the rest of the machine. The pairs cancel what moves
  both epochs of a pair alike; when their ratios differ by more than 5 %, a line under the table
  says so: run the bench again (or with more --repeat).

A train.py run and a bare run start together and then train in turns of about a second
(mnistlab.training.turns: A, B, B, A, A, B, ..., so that neither always goes first), each epoch
timed by a clock that stops while its process waits. This machine's other tenants slow one epoch
by up to a third against the next (seen here: 8.97, 11.81 and 11.31 s for the three epochs of one
run), in swings of seconds: runs one after the other measured the hour as much as the code, and
so did whole epochs taking turns (pairs 0.87-1.14 apart), while two epochs interleaved second by
second are moved alike. By default each side trains 3 epochs in three such pairs of runs
(`--epochs`, `--repeat`): six pairs of warm epochs. The samples/s columns take each side's fastest
warm epoch, the one the rest of the machine disturbed least, as timeit takes the fastest of its
repeats.

Each run is its own process, so TensorFlow loads only for keras and torch only for lightning; only
the two runs of a pair live at once, and only one of them computes at a time after their set-up
(interpreter, imports, data, model), which overlaps and is not timed. The evaluation run runs
alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mnistlab.backends import backend_names
from mnistlab.config import REPO_ROOT
from mnistlab.config.schema import ACCELERATORS, PRECISIONS
from mnistlab.errors import MnistlabError, fail
from mnistlab.run.provenance import machine
from mnistlab.training import turns

BACKENDS = backend_names()
QUIET = ("logger=none", "trainer.progress_bar=false")
EVAL_RUN = ("trainer.max_epochs=4", "trainer.limit_train_batches=1")
# pairs of epochs whose ratios differ by more than this are more than the few percent a ratio
# is read to (0.95 against 1.0): the table then says so in a line under it
NOISY_PAIRS = 0.05


class BenchError(MnistlabError):
    """A run of the bench failed; the message ends with that run's last line of output."""


def failed(what: str, code: int, output: str) -> BenchError:
    lines = output.strip().splitlines() or ["no output"]
    return BenchError(f"{what} failed (exit {code}): {lines[-1]}")


def run_python(args: list[str], what: str) -> None:
    done = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode:
        raise failed(what, done.returncode, done.stderr.strip() or done.stdout)


class Side:
    """One process of a pair, started with its ends of two pipes (mnistlab.training.turns): it
    says when it waits for its turn, the bench says when to go. Its output goes to a file."""

    def __init__(self, args: list[str], what: str, log: Path) -> None:
        go_read, self.go = os.pipe()
        self.ready, ready_write = os.pipe()
        self.what, self.log = what, log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, *args], cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, turns.ENV: f"{go_read},{ready_write}"},
                pass_fds=(go_read, ready_write))
        os.close(go_read)
        os.close(ready_write)

    def idle(self) -> bool:
        """Blocks until the process waits for its next turn (True) or has exited (False)."""
        if os.read(self.ready, 1) == turns.READY:
            return True
        if code := self.process.wait():
            raise failed(self.what, code, self.log.read_text())
        return False

    def take_turn(self) -> bool:
        """About a second of training, or the rest of the run once its last epoch has begun
        (its checkpoints, its test evaluation); False once it has exited."""
        os.write(self.go, turns.GO)
        return self.idle()

    def close(self) -> None:
        if self.process.poll() is None:  # only after another side's failure
            self.process.kill()
            self.process.wait()
        os.close(self.go)
        os.close(self.ready)


def take_turns(sides: list[Side]) -> None:
    """Both set up at once (not timed); then one turn at a time, A, B, B, A, A, B, ..., until
    every side has exited."""
    waiting = [side for side in sides if side.idle()]
    in_order = True
    while waiting:
        for side in list(waiting) if in_order else waiting[::-1]:
            if not side.take_turn():
                waiting.remove(side)
        in_order = not in_order


def paired_run(overrides: list[str], folder: Path, i: int) -> tuple[
        tuple[list[float], dict[str, Any]], dict[str, Any]]:
    """The i-th pair: a train.py run of `overrides` beside its bare loop, in turns;
    the train.py run's epoch_seconds and summary.json, and the bare run's figures."""
    run_dir, bare_json = folder / f"run{i}", folder / f"bare{i}.json"
    folder.mkdir(parents=True, exist_ok=True)
    sides: list[Side] = []
    try:
        sides.append(Side(train_args(overrides, run_dir), f"train.py {' '.join(overrides)}",
                          folder / f"run{i}.log"))
        sides.append(Side(["-m", "mnistlab.bench.bare", str(bare_json), "--", *overrides],
                          f"the bare loop of {' '.join(overrides)}", folder / f"bare{i}.log"))
        take_turns(sides)
    finally:
        for side in sides:
            side.close()
    return train_results(run_dir), json.loads(bare_json.read_text())


def train_args(overrides: list[str], run_dir: Path) -> list[str]:
    return ["train.py", *overrides, *QUIET, f"hydra.run.dir={run_dir}",
            f"paths.output={run_dir.parent}"]


def train_results(run_dir: Path) -> tuple[list[float], dict[str, Any]]:
    """A finished train.py run's epoch_seconds and its summary.json."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
    return seconds, json.loads((run_dir / "summary.json").read_text())


def train(overrides: list[str], run_dir: Path) -> tuple[list[float], dict[str, Any]]:
    """A train.py run on its own: its epoch_seconds and its summary.json."""
    run_python(train_args(overrides, run_dir), f"train.py {' '.join(overrides)}")
    return train_results(run_dir)


def timed(epoch_seconds: list[float], epochs: int) -> list[float]:
    """The timed epochs of one run: 2..`epochs` (the first is warm-up), or the first alone."""
    return epoch_seconds[1:epochs] or epoch_seconds[:1]


def rate(samples: int, epoch_seconds: list[float], epochs: int) -> float:
    """Samples per second of the run's fastest timed epoch."""
    return samples / min(timed(epoch_seconds, epochs))


def spread(epoch_seconds: list[list[float]], epochs: int) -> float:
    """How much slower the slowest timed epoch of these runs was than the fastest (0.1: 10 %
    slower). The code is the same in every epoch: what moves them is the rest of the machine,
    which is why the ratio compares pairs of epochs that trained in turns."""
    seconds = [s for run in epoch_seconds for s in timed(run, epochs)]
    return max(seconds) / min(seconds) - 1


def pair_ratios(runs: list[list[float]], bare_runs: list[list[float]], epochs: int) -> list[float]:
    """mnistlab's speed over the bare loop's in each pair of timed epochs: the same epoch of a
    train.py run and of the bare run beside it."""
    return [bare / seconds for run, bare_run in zip(runs, bare_runs, strict=True)
            for seconds, bare in zip(timed(run, epochs), timed(bare_run, epochs), strict=True)]


def bench_backend(overrides: list[str], folder: Path, repeat: int = 1) -> dict[str, Any]:
    """`repeat` pairs of runs (train.py and the bare loop of one backend's overrides, in turns),
    then mnistlab's evaluation run alone.

    The ratio is the median over the pairs of warm epochs; each side's samples/s its fastest warm
    epoch of all its runs (`rate`)."""
    runs, bares = [], []
    for i in range(repeat):
        run, bare = paired_run(overrides, folder, i)
        runs.append(run)
        bares.append(bare)
    eval_epochs, eval_summary = train([*overrides, *EVAL_RUN], folder / "eval")
    n, n_val = bares[0]["train_samples"], bares[0]["val_samples"]
    # trainer.stop_at_val_acc may stop a run early: only the epochs every run trained count
    both = min(map(len, [*(epochs for epochs, _ in runs), *(b["epoch_seconds"] for b in bares)]))
    rates = [rate(n, epochs, both) for epochs, _ in runs]
    bare_rates = [rate(n, b["epoch_seconds"], both) for b in bares]
    pairs = pair_ratios([epochs for epochs, _ in runs], [b["epoch_seconds"] for b in bares], both)
    epochs, summary = runs[rates.index(max(rates))]
    bare = bares[bare_rates.index(max(bare_rates))]
    return {
        "samples_per_second": max(rates),
        "bare_samples_per_second": max(bare_rates),
        "ratio": statistics.median(pairs),
        "pair_ratios": pairs,
        "spread": spread([epochs for epochs, _ in runs], both),
        "bare_spread": spread([b["epoch_seconds"] for b in bares], both),
        "eval_samples_per_second": n_val / min(eval_epochs[1:] or eval_epochs),
        "bare_eval_samples_per_second": max(n_val / b["eval_seconds"] for b in bares),
        "seconds_to_first_batch": eval_summary["seconds_to_first_batch"],
        "repeat": repeat,
        "all_samples_per_second": rates,
        "all_bare_samples_per_second": bare_rates,
        "batch_size": bare["batch_size"],
        "eval_batch_size": bare["eval_batch_size"],
        "train_samples": n,
        "val_samples": n_val,
        "epoch_seconds": epochs,
        "bare_epoch_seconds": bare["epoch_seconds"],
        "all_epoch_seconds": [seconds for seconds, _ in runs],
        "all_bare_epoch_seconds": [b["epoch_seconds"] for b in bares],
        "bare_train_seconds": bare["train_seconds"],
        "val_acc": summary["val_acc"],
        "bare_val_acc": bare["val_acc"],
        "val_loss": summary["val_loss"],
        "bare_val_loss": bare["val_loss"],
        "train_loss": summary["train_loss"],
        "bare_train_loss": bare["train_loss"],
        "train_acc": summary["train_acc"],
        "bare_train_acc": bare["train_acc"],
    }


def noise_note(results: dict[str, dict[str, Any]]) -> str | None:
    """A line for the reader when a backend's pairs of epochs gave ratios further apart than
    NOISY_PAIRS: the machine moved even epochs that ran back to back, and the median of a few
    such pairs is uncertain to a few percent, whatever its third decimal says."""
    worst = max(max(r["pair_ratios"]) / min(r["pair_ratios"]) - 1 for r in results.values())
    if worst <= NOISY_PAIRS:
        return None
    return (f"The ratios of the pairs of epochs differed by up to {worst:.0%} in this bench "
            "(the brackets): the rest of the machine moved even epochs that ran back to back, "
            "and each ratio, their median, is uncertain by a few percent. Run it again on a "
            "quieter machine, or with more --repeat.")


def print_table(results: dict[str, dict[str, Any]], title: str, about: dict[str, Any]) -> None:
    table = Table(title=title, caption=", ".join(f"{k} {v}" for k, v in about.items()))
    for column in ("backend", "batch", "samples/s", "bare samples/s", "ratio (pairs)",
                   "eval samples/s",
                   "bare eval samples/s", "s to 1st batch", "val acc", "bare val acc",
                   "spread (bare)"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for backend, r in results.items():
        table.add_row(backend, str(r["batch_size"]), f"{r['samples_per_second']:,.0f}",
                      f"{r['bare_samples_per_second']:,.0f}",
                      f"{r['ratio']:.3f} ({min(r['pair_ratios']):.2f}-"
                      f"{max(r['pair_ratios']):.2f})",
                      f"{r['eval_samples_per_second']:,.0f}",
                      f"{r['bare_eval_samples_per_second']:,.0f}",
                      f"{r['seconds_to_first_batch']:.1f}", f"{r['val_acc']:.4f}",
                      f"{r['bare_val_acc']:.4f}",
                      f"{r['spread']:.0%} ({r['bare_spread']:.0%})")
    console = Console()
    if not console.is_terminal:  # a pipe or a file: wide enough for every column
        console = Console(width=160)
    console.print(table)
    note = noise_note(results)
    if note:
        console.print(note, highlight=False)


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected an integer >= 1")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.bench",
        description="Training samples/s of mnistlab beside a bare loop of the same recipe, per "
                    "backend, with evaluation samples/s and seconds to the first batch.")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--recipe", default="default",
                        help="default, or an experiment (conf/experiment/NAME.yaml), e.g. fast")
    parser.add_argument("--epochs", type=positive, default=3,
                        help="trainer.max_epochs (default 3: the first is warm-up, not timed; "
                             "the others are paired)")
    parser.add_argument("--batch-size", type=int, help="data.batch_size (default: the recipe's)")
    parser.add_argument("--repeat", type=positive, default=3,
                        help="pairs of runs (mnistlab beside bare, in turns); the "
                             "ratio is the median of their pairs of warm epochs (default 3)")
    parser.add_argument("--precision", choices=PRECISIONS, default="32-true",
                        help="trainer.precision of both sides (default 32-true)")
    parser.add_argument("--subset", type=int, help="data.train_subset: the first N train samples")
    parser.add_argument("--device", default="cpu", choices=ACCELERATORS,
                        help="trainer.accelerator (default cpu)")
    parser.add_argument("--data-dir", type=Path,
                        help="paths.data, the folder holding mnist/ (default: $MNISTLAB_DATA_DIR)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("overrides", nargs="*",
                        help="more Hydra overrides for every run, after --: -- data.val_size=100")
    return parser.parse_args(argv)


def overrides_of(args: argparse.Namespace, backend: str) -> list[str]:
    """The train.py command line of one backend; the experiment first, so the rest win."""
    return [
        *([f"experiment={args.recipe}"] if args.recipe != "default" else []),
        f"backend={backend}", f"trainer.max_epochs={args.epochs}",
        f"trainer.accelerator={args.device}", f"trainer.precision={args.precision}",
        *([f"data.batch_size={args.batch_size}"] if args.batch_size else []),
        *([f"data.train_subset={args.subset}"] if args.subset else []),
        *([f"paths.data={args.data_dir.resolve()}"] if args.data_dir else []),
        *args.overrides,
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="mnistlab-bench-") as tmp:
            for backend in args.backend:
                print(f"bench: {backend} ...", file=sys.stderr, flush=True)
                results[backend] = bench_backend(overrides_of(args, backend), Path(tmp, backend),
                                                 args.repeat)
    except MnistlabError as e:
        fail(e)
    about = machine(dated=True)
    n = next(iter(results.values()))["train_samples"]
    print_table(results, f"mnistlab bench: recipe {args.recipe}, {n:,} train samples, "
                f"{args.epochs} epoch(s), device {args.device}, precision {args.precision}, "
                f"{args.repeat} pair(s) of runs", about)
    if args.json:
        payload = {b: {"recipe": args.recipe, "device": args.device, "epochs": args.epochs,
                       "precision": args.precision, **r,
                       "machine": about} for b, r in results.items()}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")

