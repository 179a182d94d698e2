"""`python -m mnistlab.runs`: an index of the run directories under outputs/ (or any folders),
to find a run without opening each summary.json.

- ``ls [DIR ...]``: a row per run (default: the repo's outputs/), filtered with ``--where``
  (:mod:`~mnistlab.runs.query`), sorted, with chosen columns, or grouped with the seeds folded
  (:mod:`~mnistlab.runs.index`); as a terminal table, CSV or JSON.
- ``diff A B``: the config keys and the provenance that differ between two runs
  (:mod:`~mnistlab.runs.diff`).

Runs are read by :mod:`mnistlab.report.runs`, as the report reads them; a bad option is one
``error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnistlab.config import REPO_ROOT
from mnistlab.errors import MnistlabError, fail
from mnistlab.report.tables import print_table, to_csv
from mnistlab.runs.diff import DIFF_COLUMNS, diff_runs, load_pair
from mnistlab.runs.index import (
    GROUP_METRICS,
    check_keys,
    default_columns,
    group_columns,
    group_rows,
    known_keys,
    load_index,
    rows,
    sort_rows,
)
from mnistlab.runs.query import compile_where

__all__ = ["main"]

FORMATS = ("table", "csv", "json")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def list_runs(args: argparse.Namespace) -> None:
    """``ls``: read, filter, then rows or groups, sorted, in the chosen format."""
    dirs = args.dirs or [REPO_ROOT / "outputs"]
    entries = load_index(dirs)
    known = known_keys(entries)
    if args.where:
        where = compile_where(args.where, known)
        entries = [e for e in entries if where(e.values)]
    if args.group_by:
        keys = _names(args.group_by)
        check_keys("--group-by", keys, known)
        columns, table = group_columns(keys), group_rows(entries, keys)
        sortable = columns
    else:
        columns = _names(args.columns or "")
        check_keys("--columns", columns, known)
        columns = columns or default_columns(entries)  # its keys may be missing: empty cells
        table, sortable = [e.values for e in entries], known
    if args.sort:
        check_keys("--sort", [args.sort.removeprefix("-")], sortable)
        table = sort_rows(table, args.sort)
    table = rows(table, columns)
    if args.format == "csv":
        sys.stdout.write(to_csv(table, columns))
    elif args.format == "json":
        print(json.dumps(table, indent=2, default=str))
    elif args.group_by:
        print_table(*_shown_groups(table, keys),
                    title=f"{len(table)} groups of {len(entries)} runs under {dirs[0]} "
                          "(over completed runs: mean ± std)")
    else:
        print_table(table, columns, title=f"{len(table)} runs under {dirs[0]}")


def _shown_groups(table: list[dict[str, Any]], keys: list[str]) -> tuple[list[dict], list[str]]:
    """The terminal's groups: each metric's mean ± std in one cell (one run: its value)."""
    columns = [*keys, "n", "not_completed", "seeds", *GROUP_METRICS]
    shown = []
    for row in table:
        cells = {c: row[c] for c in columns if c in row}
        for m in GROUP_METRICS:
            mean, std = row[f"{m}_mean"], row[f"{m}_std"]
            cells[m] = (None if mean is None else f"{mean:.4f}" if std is None
                        else f"{mean:.4f} ± {std:.4f}")
        shown.append(cells)
    return shown, columns


def diff(args: argparse.Namespace) -> None:
    """``diff``: the differing config keys, then the differing provenance."""
    result = diff_runs(*load_pair(args.a, args.b))
    print(f"A: {args.a}\nB: {args.b}")
    if result.config is None:
        print(f"config: not compared: {' and '.join(result.unreadable)} has no readable "
              ".hydra/config.yaml")
    elif result.config:
        print_table(result.config, DIFF_COLUMNS,
                    title=f"config: {len(result.config)} of {result.compared} keys differ")
    else:
        print(f"config: the same ({result.compared} keys)")
    if result.provenance is None:
        print("provenance: neither run records it (runs from before summary.json had commit "
              "and machine)")
    elif result.provenance:
        print_table(result.provenance, DIFF_COLUMNS[:3], title="provenance (summary.json)")
    else:
        print("provenance: the same (commit and machine)")
    print("data: runs record no checksums of their data files; the data.* config keys above "
          "are all that tells their data apart")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.runs",
        description="An index of run directories (any directory holding summary.json).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ls = commands.add_parser("ls", help="a row per run, filtered, sorted or grouped",
                             description="A row per run directory found under the DIRs.")
    ls.add_argument("dirs", nargs="*", type=Path, metavar="DIR",
                    help="run dir, sweep dir or outputs/, searched recursively "
                         "(default: the repo's outputs/)")
    ls.add_argument("--where", metavar="EXPR",
                    help="only the runs matching it, e.g. 'test_acc>0.99 and "
                         "optimizer.name==\"adam\"' (docs/runs.md)")
    ls.add_argument("--sort", metavar="KEY", help="sort by KEY, -KEY descending; missing last")
    shape = ls.add_mutually_exclusive_group()
    shape.add_argument("--columns", metavar="A,B,...", help="these columns instead of the default")
    shape.add_argument("--group-by", metavar="KEY[,KEY]",
                       help="a row per group of runs equal in the KEYs, seeds folded: n, mean "
                            "± std of test_acc and best_val_acc")
    ls.add_argument("--format", choices=FORMATS, default="table",
                    help="a terminal table, or CSV or JSON on stdout")
    ls.set_defaults(action=list_runs)
    compare = commands.add_parser("diff", help="what differs between two runs",
                                  description="The config keys and provenance (commit, "
                                              "machine) that differ between two runs.")
    compare.add_argument("a", type=Path, metavar="A", help="a run directory")
    compare.add_argument("b", type=Path, metavar="B", help="another run directory")
    compare.set_defaults(action=diff)
    return parser


def _descending_sort(argv: Sequence[str]) -> list[str]:
    """``--sort KEY`` as ``--sort=KEY``, so that argparse does not take ``-KEY`` for an option."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        value = next(args, None) if arg == "--sort" else None
        out.append(arg if value is None else f"--sort={value}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mnistlab.runs``; a user error is one ``error:`` line and exit 2."""
    args = parser().parse_args(_descending_sort(sys.argv[1:] if argv is None else argv))
    try:
        args.action(args)
    except MnistlabError as e:
        fail(e)
    return 0
