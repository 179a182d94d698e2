"""mnistlab.bench.compare in this process: with --repeat, mnistlab's runs and the bare loop's take
turns and each side's fastest warm epoch counts; its defaults. Whole bench runs:
tests/processes/test_bench_runs.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_with_repeat_the_fastest_run_of_each_side_counts(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """Runs take turns (mnistlab, bare, mnistlab, bare), and each side's fastest counts: here
    mnistlab's second run (epoch 2 in 8 s) and the bare loop's first (epoch 2 in 9 s)."""
    from mnistlab.bench import compare as bench

    mnistlab_runs = iter([[20.0, 10.0], [20.0, 8.0]])
    bare_runs = iter([[20.0, 9.0], [20.0, 12.0]])
    order = []

    def train(overrides: list[str], run_dir: Path):
        order.append(run_dir.name)
        seconds = [5.0, 2.0] if run_dir.name == "eval" else next(mnistlab_runs)
        return seconds, {"seconds_to_first_batch": 3.0 + len(order), "val_acc": 0.9,
                         "val_loss": 0.3, "train_loss": 0.4, "train_acc": 0.8}

    def run_python(args: list[str], what: str) -> None:
        order.append("bare")
        Path(args[2]).write_text(json.dumps({
            "epoch_seconds": next(bare_runs), "train_seconds": [1.0, 1.0], "eval_seconds": 1.0,
            "val_loss": 0.3, "val_acc": 0.9, "train_loss": 0.4, "train_acc": 0.8,
            "train_samples": 1000, "val_samples": 100,
            "batch_size": 50, "eval_batch_size": 100}))

    monkeypatch.setattr(bench, "train", train)
    monkeypatch.setattr(bench, "run_python", run_python)
    tmp_path.joinpath("b").mkdir()
    r = bench.bench_backend(["backend=lightning"], tmp_path / "b", repeat=2)
    assert order == ["run0", "bare", "run1", "bare", "eval"]
    assert r["all_samples_per_second"] == [100.0, 125.0]
    assert r["all_epoch_seconds"] == [[20.0, 10.0], [20.0, 8.0]]
    assert r["all_bare_epoch_seconds"] == [[20.0, 9.0], [20.0, 12.0]]
    assert r["samples_per_second"] == 125.0 and r["epoch_seconds"] == [20.0, 8.0]
    assert r["bare_samples_per_second"] == pytest.approx(1000 / 9)
    assert r["ratio"] == pytest.approx(125 / (1000 / 9))
    assert r["seconds_to_first_batch"] == 4.0  # the smallest: the first run's
    # epoch 2: mnistlab's took 10 and 8 s (25 % more), the bare loop's 9 and 12 s (a third more)
    assert (r["spread"], r["bare_spread"]) == (pytest.approx(0.25), pytest.approx(1 / 3))


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
    quiet = {"lightning": row | {"spread": 0.02, "bare_spread": 0.05}}
    assert bench.noise_note(quiet) is None
    noisy = quiet | {"keras": row | {"spread": 0.03, "bare_spread": 0.43}}
    assert "up to 43%" in bench.noise_note(noisy)
    bench.print_table(noisy, "title", {"cpu": "x"})
    printed = " ".join(capsys.readouterr().out.split())
    assert "differed by up to 43% in this bench" in printed
    bench.print_table(quiet, "title", {"cpu": "x"})
    assert "differed" not in capsys.readouterr().out
