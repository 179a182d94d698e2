"""`python -m mnistlab.runs ls`, in this process through main(argv) on hand-built run
directories: default and chosen columns, --where (and its one-line errors), --sort,
--group-by, and CSV and JSON that parse back."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from mnistlab.runs import main
from mnistlab.runs.index import DEFAULT_COLUMNS
from tests.conftest import make_run

SWEEP = "multirun/2026-01-01_10-00-00_000000"
# (job, optimizer, lr, seed, test_acc): two settings, two seeds each
JOBS = [("0", "adam", 0.001, 1, 0.991), ("1", "adam", 0.001, 2, 0.993),
        ("2", "sgd", 0.01, 1, 0.970), ("3", "sgd", 0.01, 2, 0.980)]
ADAM = {f"{SWEEP}/0", f"{SWEEP}/1"}
SGD = {f"{SWEEP}/2", f"{SWEEP}/3"}
FAILED = "runs/failed"  # adam, seed 42, no test_acc
BARE = "runs/bare"  # summary.json alone: no config keys at all


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("outputs")
    for job, optimizer, lr, seed, acc in JOBS:
        make_run(out / SWEEP / job, optimizer=optimizer, lr=lr, seed=seed,
                 results=dict(train_acc=0.98, val_acc=0.975, test_acc=acc,
                              best_val_acc=acc + 0.001, best_epoch=5, wall_seconds=10.0))
    make_run(out / FAILED, error="RuntimeError: boom", results={"test_acc": None})
    (out / BARE).mkdir(parents=True)
    (out / BARE / "summary.json").write_text(json.dumps(
        {"status": "interrupted", "backend": "x", "test_acc": 0.95, "seed": 7}))
    return out


def ls(capsys: pytest.CaptureFixture[str], out: Path, *options: str) -> str:
    assert main(["ls", str(out), *options]) == 0
    return capsys.readouterr().out


def ls_json(capsys: pytest.CaptureFixture[str], out: Path, *options: str) -> list[dict[str, Any]]:
    return json.loads(ls(capsys, out, *options, "--format", "json"))


def names(rows: list[dict[str, Any]]) -> set[str]:
    return {row["run"] for row in rows}


def test_default_columns_add_the_keys_that_vary(outputs: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rows = ls_json(capsys, outputs)
    assert names(rows) == ADAM | SGD | {FAILED, BARE}
    assert list(rows[0]) == [*DEFAULT_COLUMNS, "optimizer.name", "optimizer.lr"]
    job = next(r for r in rows if r["run"] == f"{SWEEP}/2")
    assert (job["status"], job["seed"], job["epochs"], job["test_acc"]) == ("completed", 1, 5, 0.97)
    assert (job["optimizer.name"], job["optimizer.lr"]) == ("sgd", 0.01)
    # between the adam runs only the seed varies: no key is added
    adam = ls_json(capsys, outputs, "--where", 'optimizer.name == "adam"')
    assert list(adam[0]) == list(DEFAULT_COLUMNS)
    table = ls(capsys, outputs)
    assert "6 runs under" in table and "optimizer.lr" in table and f"{SWEEP}/3" in table


@pytest.mark.parametrize(("where", "expected"), [
    ("test_acc > 0.985", ADAM),
    ('optimizer.name == "sgd" and trainer.seed == 1', {f"{SWEEP}/2"}),
    ("optimizer.name=='sgd' or test_acc >= 0.993", SGD | {f"{SWEEP}/1"}),
    ("not (optimizer.name == 'adam')", SGD),  # BARE lacks the key: unknown, also under not
    ('optimizer.name != "adam"', SGD),
    ('optimizer.name in ["sgd", "rmsprop"]', SGD),
    ("optimizer.lr not in (0.01,) and status == 'completed'", ADAM),
    ("0.975 < test_acc < 0.992", {f"{SWEEP}/0", f"{SWEEP}/3"}),
    ("status != 'completed'", {FAILED, BARE}),
    ("error == null", ADAM | SGD),  # BARE has no error key, FAILED has one
    ("test_acc < 0.96", {BARE}),  # FAILED's null has no order: not a match, not a crash
    ("trainer.deterministic == true and optimizer.lr > -1", ADAM | SGD | {FAILED}),
    ("backend == 'x' or seed == 42", {FAILED, BARE}),
])
def test_where_selects_runs(outputs: Path, capsys: pytest.CaptureFixture[str], where: str,
                            expected: set[str]) -> None:
    assert names(ls_json(capsys, outputs, "--where", where)) == expected


@pytest.mark.parametrize(("where", "message"), [
    ("len(run) > 1", "a function call (len(run)) is not allowed"),
    ("test_acc >", "invalid syntax"),
    ("optimizer.name == ('adam'", "was never closed"),
    ('optimizr.name == "adam"', "unknown key 'optimizr.name'; did you mean optimizer.name"),
    ("lr == 0.01", "unknown key 'lr'; did you mean optimizer.lr?"),
    ("run[0] == 'r'", "a subscript (run[0]) is not allowed"),
    ("test_acc + 1 > 2", "arithmetic (test_acc + 1) is not allowed"),
    ("run.__class__ == 1", "unknown key 'run.__class__'"),
    ("'x'.upper == 1", "attribute access ('x'.upper) is not allowed"),
    ("test_acc", "a value not compared to anything (test_acc) is not allowed"),
    ("status in 'completed'", "`in` with anything but a [list]"),
])
def test_a_bad_where_is_one_line(outputs: Path, capsys: pytest.CaptureFixture[str], where: str,
                                 message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["ls", str(outputs), "--where", where])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --where") and message in line


def test_sort_ascending_and_descending_with_missing_values_last(
        outputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    up = ls_json(capsys, outputs, "--sort", "test_acc", "--columns", "run,test_acc")
    assert [r["test_acc"] for r in up] == [0.95, 0.97, 0.98, 0.991, 0.993, None]
    down = ls_json(capsys, outputs, "--sort", "-test_acc", "--columns", "run,test_acc")
    assert [r["test_acc"] for r in down] == [0.993, 0.991, 0.98, 0.97, 0.95, None]
    by_name = ls_json(capsys, outputs, "--sort=-optimizer.name", "--columns", "run")
    assert {r["run"] for r in by_name[:2]} == SGD and by_name[-1]["run"] == BARE


def test_columns_replace_the_default_and_an_unknown_one_is_one_line(
        outputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = ls_json(capsys, outputs, "--columns", "run, optimizer.lr,status")
    assert all(list(r) == ["run", "optimizer.lr", "status"] for r in rows)
    assert {r["optimizer.lr"] for r in rows} == {0.001, 0.01, None}
    with pytest.raises(SystemExit) as exit_:
        main(["ls", str(outputs), "--columns", "run,tst_acc"])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert line.startswith("error: --columns: unknown key 'tst_acc'; did you mean test_acc")


def test_group_by_folds_the_seeds(outputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    groups = ls_json(capsys, outputs, "--group-by", "optimizer.name,optimizer.lr")
    by_name = {g["optimizer.name"]: g for g in groups}
    adam, sgd = by_name["adam"], by_name["sgd"]
    assert (adam["n"], adam["not_completed"], sorted(adam["seeds"])) == (2, 1, [1, 2, 42])
    assert adam["test_acc_mean"] == pytest.approx(0.992)
    assert adam["test_acc_std"] == pytest.approx(0.0014142, abs=1e-6)
    assert (sgd["n"], sgd["not_completed"], sgd["test_acc_mean"]) == (2, 0, pytest.approx(0.975))
    assert sgd["best_val_acc_mean"] == pytest.approx(0.976)
    assert (by_name[None]["n"], by_name[None]["not_completed"]) == (0, 1)  # BARE: no config
    table = ls(capsys, outputs, "--group-by", "optimizer.name", "--sort", "-test_acc_mean")
    assert "0.9920 ± 0.0014" in table and table.index("adam") < table.index("sgd")


def test_csv_and_json_parse_back_alike(outputs: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    rows = ls_json(capsys, outputs)
    text = ls(capsys, outputs, "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["run"] for r in parsed] == [r["run"] for r in rows]
    assert parsed[0] == {k: "" if v is None else str(v) for k, v in rows[0].items()}


def test_a_run_without_the_default_keys_is_listed(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "died").mkdir()
    (tmp_path / "died" / "summary.json").write_text('{"status": "failed"}')
    [row] = ls_json(capsys, tmp_path)
    assert row == {**dict.fromkeys(DEFAULT_COLUMNS), "run": "died", "status": "failed"}


def test_nothing_found_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["ls", str(tmp_path)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: no runs (summary.json) found under {tmp_path}\n"
