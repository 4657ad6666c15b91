"""The architecture's rules that a reader of docs/architecture.md relies on, checked on the code:
the import contracts are live (a wrong import fails them), functions stay short, and every import
made inside a function says why it is not at the top."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "seglab"
IMPORT = ("import ", "from ")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def test_no_function_is_longer_than_80_lines_but_argparse_declarations():
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for path, node in functions()
        if node.end_lineno - node.lineno + 1 > 80
        and not (path.name == "cli.py" and node.name.startswith("_add_"))
    ]
    assert long == []


def test_every_import_inside_a_function_says_why():
    """The command line imports each command's needs when it runs (its module docstring says so,
    for an instant --help) and lazy package attributes live in __init__; anywhere else an import
    inside a function carries a comment: start-up time, or an optional dependency."""
    silent = []
    for path, node in functions():
        if path.name in ("cli.py", "__init__.py"):
            continue
        lines = path.read_text().splitlines()
        for inner in ast.walk(node):
            is_import = isinstance(inner, (ast.Import, ast.ImportFrom))
            if is_import and not explained(lines, inner.lineno - 1, inner.end_lineno):
                silent.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert silent == []


def explained(lines: list[str], first: int, end: int) -> bool:
    """Whether the import on ``lines[first:end]``, or the block of imports it closes, carries a
    comment (on a line of the block or the line just above it)."""
    start = first
    while start > 0 and (
        not lines[start - 1].strip() or lines[start - 1].strip().startswith(IMPORT)
    ):
        start -= 1  # one comment over a block of imports (blank lines between) explains each
    return any("#" in line for line in lines[max(start - 1, 0) : end])


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed here")
def test_the_import_contracts_fail_on_a_wrong_import(tmp_path):
    """A copy of the package with one upward import (the engine reaching into reporting) breaks
    the layers contract; the package as it is keeps every contract."""
    copy = tmp_path / "src" / "seglab"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    metrics = copy / "engine" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nimport seglab.reporting.results  # wrong\n")

    def lint(src: Path) -> subprocess.CompletedProcess:
        env = {"PYTHONPATH": str(src), "PATH": str(Path(sys.executable).parent)}
        return subprocess.run(
            [str(LINT_IMPORTS), "--no-cache"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )

    broken = lint(tmp_path / "src")
    assert broken.returncode != 0
    assert "seglab.engine is not allowed to import seglab.reporting" in broken.stdout
    assert "seglab.engine.metrics -> seglab.reporting.results" in broken.stdout
    assert lint(ROOT / "src").returncode == 0
