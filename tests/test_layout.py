"""The package's layering, read from its imports: a module imports only its own layer's package
and those below it, and nothing outside backends/ names a backend."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mnistlab.backends import backend_names

PACKAGE = Path(__import__("mnistlab").__file__).parent
# lowest first; a package may import its own modules and any package on a lower layer
LAYERS = [
    ("errors",),  # what every layer may raise, and its one-line messages
    ("atomic", "registry"),  # writing a file whole; name -> builder tables
    ("plotting",),
    ("data",),  # dataset files and the split
    ("config",),  # schemas with each key's range, and the value checks
    ("training",),  # the contract a backend implements, and what it uses while training
    ("backends",),  # lightning/, keras/: the only place that names a backend
    ("run",),  # a job's life: the Hydra app, run directory, tracking, outputs
    ("report", "eda", "inference"),  # what reads finished runs or uses them; data exploration
    ("study", "bench", "runs"),  # the student study's plug-in, the speed bench, the run index
    ("sweepers",),  # Hydra plug-ins
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [n for n in names if n.startswith("mnistlab.")]


def package_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_package_has_a_layer() -> None:
    tops = {package_of(p) for p in modules()} - {"__init__"}
    assert tops == set(RANK), f"add {tops - set(RANK)} to LAYERS; remove {set(RANK) - tops}"


def test_no_module_imports_a_layer_above_or_beside_its_own() -> None:
    wrong = []
    for path in modules():
        mine = package_of(path)
        if mine == "__init__":
            continue
        for name in imported(path):
            theirs = name.split(".")[1]
            if theirs != mine and RANK[theirs] >= RANK[mine]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", backend_names())
def test_nothing_outside_backends_names_a_backend(name: str) -> None:
    """No string literal (docstrings aside) and no import outside backends/ names one."""
    wrong = []
    for path in modules():
        if package_of(path) == "backends":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                      and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings and name in node.value.lower().split("-")):
                wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
        wrong += [f"{path.relative_to(PACKAGE)} imports {m}" for m in imported(path)
                  if m.startswith(f"mnistlab.backends.{name}")]
    assert not wrong, "\n".join(wrong)
