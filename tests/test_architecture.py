"""The package's architecture holds: import-linter's contracts in pyproject.toml (layers, no circle inside a
subpackage, Hydra at the edges) are kept, and modules and functions stay small enough to read."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "roadmap"


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    p = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    summary = [line for line in p.stdout.splitlines() if line.startswith("Contracts:")]
    assert (p.returncode, summary) == (0, ["Contracts: 3 kept, 0 broken."]), p.stdout[-3000:]


def test_modules_under_400_lines_and_functions_under_60():
    long_modules, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(ROOT))
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long_modules.append((name, len(text.splitlines())))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append((name, node.name, node.end_lineno - node.lineno + 1))
    assert (long_modules, long_functions) == ([], [])
