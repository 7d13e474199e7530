"""Mutation testing by hand, for decision code: flip each comparison, replace each statement
with `pass`, nudge each number or boolean, and run the given tests against every mutant
(`pytest -x`, two at a time, each in its own copy of the package). A mutant the tests pass
on "survived": either the tests miss something or the mutant is equivalent.

    .venv/bin/python scripts/mutants.py rayctl/autoscaler/decide.py \\
        tests/unit/test_decide.py tests/unit/test_reconciler.py [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
SKIPPED = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.Pass)


@dataclass(frozen=True)
class Site:
    kind: str  # flip, const, delete
    index: int  # the node's position in ast.walk order
    detail: tuple = ()


@dataclass(frozen=True)
class Result:
    line: int
    kind: str
    what: str
    killed: bool


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            found.add(id(first))
    return found


def sites(tree: ast.AST) -> list[Site]:
    docs = _docstrings(tree)
    found = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.Compare):
            found += [Site("flip", i, (j,)) for j, op in enumerate(node.ops) if type(op) in FLIP]
        elif isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float)):
            found.append(Site("const", i))
        if isinstance(node, (ast.Module, ast.ClassDef)):
            continue  # module and class bodies are definitions
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):  # a lambda's or an if-expression's body
                continue
            for j, stmt in enumerate(statements):
                kept = isinstance(stmt, ast.stmt) and not isinstance(stmt, SKIPPED)
                if kept and id(stmt) not in docs:
                    found.append(Site("delete", i, (field, j)))
    return found


def mutate(tree: ast.AST, site: Site) -> tuple[str, int, str]:
    """The mutant's source, the line it changes, and what it changes."""
    tree = copy.deepcopy(tree)
    node = list(ast.walk(tree))[site.index]
    if site.kind == "flip":
        (j,) = site.detail
        node.ops[j] = FLIP[type(node.ops[j])]()
        return ast.unparse(tree), node.lineno, type(node.ops[j]).__name__
    if site.kind == "const":
        old = node.value
        node.value = (not old) if isinstance(old, bool) else (old * 2 if old else 1)
        return ast.unparse(tree), node.lineno, f"{old!r} -> {node.value!r}"
    field, j = site.detail
    body = getattr(node, field)
    line, what = body[j].lineno, ast.unparse(body[j]).splitlines()[0][:70]
    body[j] = ast.Pass()
    return ast.unparse(tree), line, what


def run(module: str, tests: list[str], tree: ast.AST, site: Site | None, workdir: Path) -> Result:
    """The tests against `module` mutated at `site` (None: as it is)."""
    source, line, what = mutate(tree, site) if site else (ast.unparse(tree), 0, "")
    (workdir / module).write_text(source)
    env = dict(os.environ, PYTHONPATH=str(workdir), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    command += [str(workdir / t) for t in tests]
    try:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, timeout=60)
        killed = done.returncode != 0
    except subprocess.TimeoutExpired:
        killed = True
    return Result(line, site.kind if site else "none", what, killed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="e.g. rayctl/autoscaler/decide.py")
    parser.add_argument("tests", nargs="+", help="test files, e.g. tests/unit/test_decide.py")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tree = ast.parse((REPO / args.module).read_text())
    todo = sites(tree)
    print(f"{len(todo)} mutants of {args.module}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        workdirs = []
        for w in range(2):
            workdir = Path(scratch) / str(w)
            # The whole checkout but its venv: tests need conftest fixtures, helpers, the
            # shipped configs and pytest's settings (a test that errors for want of one
            # would count every mutant as killed).
            skip = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info")
            shutil.copytree(REPO, workdir, ignore=skip)
            workdirs.append(workdir)
        baseline = run(args.module, args.tests, tree, None, workdirs[0])
        if baseline.killed:
            print("the tests fail on the unmutated code: fix them first", file=sys.stderr)
            return 1
        results: list[Result | None] = [None] * len(todo)

        def worker(w: int) -> None:
            for k in range(w, len(todo), 2):
                results[k] = run(args.module, args.tests, tree, todo[k], workdirs[w])

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(worker, range(2)))
    done = [r for r in results if r is not None]
    killed = sum(r.killed for r in done)
    print(f"killed {killed} of {len(done)} ({100 * killed / len(done):.1f}%)")
    for r in sorted((r for r in done if not r.killed), key=lambda r: r.line):
        print(f"  survived: line {r.line}: {r.kind} {r.what}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in done], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
