"""mnistlab.bench.compare in this process: pairs of runs training in turns, and the figures
taken from them; its defaults. Whole bench runs: tests/processes/test_bench_runs.py."""

from __future__ import annotations

import os
import sys
import textwrap
from itertools import pairwise
from pathlib import Path

import pytest

from mnistlab.config import REPO_ROOT


def test_the_ratio_is_the_median_of_the_pairs_and_each_side_counts_its_fastest_epoch(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two pairs of runs: the ratio is the median of their pairs of warm epochs; the samples/s
    columns each side's fastest warm epoch (mnistlab's second run, the bare loop's first)."""
    from mnistlab.bench import compare as bench

    mnistlab_runs = iter([[20.0, 10.0, 10.0], [20.0, 8.0, 16.0]])
    bare_runs = iter([[20.0, 9.0, 12.0], [20.0, 9.6, 12.0]])
    order = []

    def summary(seconds_to_first_batch: float) -> dict[str, float]:
        return {"seconds_to_first_batch": seconds_to_first_batch, "val_acc": 0.9,
                "val_loss": 0.3, "train_loss": 0.4, "train_acc": 0.8}

    def paired_run(overrides: list[str], folder: Path, i: int):
        order.append(f"pair{i}")
        return (next(mnistlab_runs), summary(9.0)), {
            "epoch_seconds": next(bare_runs), "train_seconds": [1.0] * 3, "eval_seconds": 1.0,
            "val_loss": 0.3, "val_acc": 0.9, "train_loss": 0.4, "train_acc": 0.8,
            "train_samples": 1000, "val_samples": 100,
            "batch_size": 50, "eval_batch_size": 100}

    def train(overrides: list[str], run_dir: Path):
        order.append(run_dir.name)
        return [5.0, 2.0], summary(4.0)

    monkeypatch.setattr(bench, "paired_run", paired_run)
    monkeypatch.setattr(bench, "train", train)
    r = bench.bench_backend(["backend=lightning"], tmp_path / "b", repeat=2)
    assert order == ["pair0", "pair1", "eval"]
    # bare / mnistlab seconds of epochs 2 and 3 of each pair: 0.9, 1.2, 1.2, 0.75
    assert r["pair_ratios"] == pytest.approx([0.9, 1.2, 1.2, 0.75])
    assert r["ratio"] == pytest.approx(1.05)
    assert r["all_samples_per_second"] == [100.0, 125.0]
    assert r["samples_per_second"] == 125.0 and r["epoch_seconds"] == [20.0, 8.0, 16.0]
    assert r["bare_samples_per_second"] == pytest.approx(1000 / 9)
    assert r["seconds_to_first_batch"] == 4.0  # the evaluation run's: the CPU to itself
    # warm epochs: mnistlab's took 8 to 16 s, the bare loop's 9 to 12 s
    assert (r["spread"], r["bare_spread"]) == (pytest.approx(1.0), pytest.approx(1 / 3))


# a stand-in for train.py and the bare loop: EPOCHS epochs of a wait for its turn (every call
# a turn here) and 0.2 s of work, each appending its name, its start and end by time.monotonic
# and by turns.clock to a shared log; FAIL_AT: the epoch at which it exits 3 instead
SIDE = textwrap.dedent("""
    import sys, time
    from mnistlab.training import turns
    turns.TURN_SECONDS = 0
    name, epochs, fail_at, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    for epoch in range(1, epochs + 1):
        turns.wait_for_turn()
        if epoch == fail_at:
            print("the last line of", name)
            sys.exit(3)
        start, clock = time.monotonic(), turns.clock()
        time.sleep(0.2)
        with open(log, "a") as f:
            f.write(f"{name}{epoch} {start} {time.monotonic()} {clock} {turns.clock()}\\n")
""")


def side(name: str, epochs: int, log: Path, fail_at: int = 0):
    from mnistlab.bench.compare import Side

    return Side(["-c", SIDE, name, str(epochs), str(fail_at), str(log)], name,
                log.with_name(f"{name}.log"))


def test_a_pair_trains_in_turn_neither_side_always_first_on_a_clock_that_stops_between(
        tmp_path: Path) -> None:
    from mnistlab.bench.compare import take_turns

    log = tmp_path / "epochs.log"
    sides = [side("A", 3, log), side("B", 4, log)]
    try:
        take_turns(sides)
    finally:
        for s in sides:
            s.close()
    rows = {name: [float(v) for v in times]
            for name, *times in (line.split() for line in log.read_text().splitlines())}
    assert list(rows) == ["A1", "B1", "B2", "A2", "A3", "B3", "B4"]
    spans = list(rows.values())
    assert all(end <= next_start for (_, end, *_), (next_start, *_) in pairwise(spans))
    # from A1's start to A3's end A waited while B worked (B1, B2: 0.4 s at least), and A's
    # clock left that out
    wall = rows["A3"][1] - rows["A1"][0]
    clock = rows["A3"][3] - rows["A1"][2]
    assert clock <= wall - 0.4


def test_a_failed_side_stops_the_pair_in_one_line(tmp_path: Path) -> None:
    from mnistlab.bench.compare import BenchError, take_turns

    log = tmp_path / "epochs.log"
    sides = [side("A", 3, log, fail_at=2), side("B", 3, log)]
    try:
        with pytest.raises(BenchError, match=r"^A failed \(exit 3\): the last line of A$"):
            take_turns(sides)
    finally:
        for s in sides:
            s.close()
    assert sides[1].process.returncode is not None  # B, waiting for its turn, was stopped
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["A1", "B1", "B2"]


def test_outside_the_bench_a_batch_waits_for_nothing_a_bad_pipe_is_refused_none_inherited(
        tmp_path: Path) -> None:
    import subprocess

    check = ("from mnistlab.training.turns import wait_for_turn; wait_for_turn(); "
             "print('went on')")
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_TURNS"}
    alone = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=60, env=env)
    assert alone.stdout == "went on\n", alone.stderr
    bad = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=60,
                         env=env | {"MNISTLAB_TURNS": "7"})
    assert "MNISTLAB_TURNS='7' is not allowed" in bad.stderr
    # a process the benched one starts (another DDP rank) does not inherit the pipe ends' numbers
    child = subprocess.run(
        [sys.executable, "-c", "import os; from mnistlab.training import turns; "
                               "print(os.environ.get('MNISTLAB_TURNS'))"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env=env | {"MNISTLAB_TURNS": "7,8"})
    assert child.stdout == "None\n", child.stderr


def test_the_default_bench_times_the_fastest_warm_epoch_of_three_runs() -> None:
    from mnistlab.bench import compare as bench

    args = bench.parse_args([])
    assert (args.epochs, args.repeat, args.precision) == (3, 3, "32-true")
    # the first epoch is not timed; of the others, the fastest counts
    assert bench.rate(1000, [5.0, 10.0, 8.0], args.epochs) == 125.0
    assert bench.rate(1000, [20.0, 8.0, 10.0], args.epochs) == 125.0
    assert bench.rate(1000, [20.0, 8.0, 4.0], 2) == 125.0  # epochs other runs lack do not count
    assert bench.rate(1000, [8.0], 1) == 125.0
    both = bench.overrides_of(bench.parse_args(["--precision", "bf16-mixed"]), "keras")
    assert "trainer.precision=bf16-mixed" in both and "backend=keras" in both


def test_an_unknown_precision_is_refused_by_the_bench(capsys: pytest.CaptureFixture) -> None:
    from mnistlab.bench import compare as bench

    with pytest.raises(SystemExit):
        bench.parse_args(["--precision", "bf17"])
    assert "invalid choice: 'bf17'" in capsys.readouterr().err


def test_the_table_says_when_the_machine_moved_the_epochs_more_than_a_ratio_can_bear(
        capsys: pytest.CaptureFixture) -> None:
    from mnistlab.bench import compare as bench

    row = {"batch_size": 50, "samples_per_second": 100.0, "bare_samples_per_second": 100.0,
           "ratio": 1.0, "eval_samples_per_second": 1.0, "bare_eval_samples_per_second": 1.0,
           "seconds_to_first_batch": 1.0, "val_acc": 0.9, "bare_val_acc": 0.9}
    # the host moved whole epochs by 30 % (spread), but the pairs' ratios alike: no note
    quiet = {"lightning": row | {"spread": 0.3, "bare_spread": 0.3,
                                 "pair_ratios": [0.98, 1.0, 1.02]}}
    assert bench.noise_note(quiet) is None
    noisy = quiet | {"keras": row | {"spread": 0.03, "bare_spread": 0.05,
                                     "pair_ratios": [0.8, 1.0, 1.144]}}
    assert "up to 43%" in bench.noise_note(noisy)
    bench.print_table(noisy, "title", {"cpu": "x"})
    printed = " ".join(capsys.readouterr().out.split())
    assert "differed by up to 43% in this bench" in printed
    assert "1.000" in printed and "(0.80-1.14)" in printed
    bench.print_table(quiet, "title", {"cpu": "x"})
    assert "differed" not in capsys.readouterr().out
