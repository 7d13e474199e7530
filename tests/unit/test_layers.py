"""The layers of DESIGN.md are import-linter contracts (pyproject.toml): the tree keeps them,
a back-import breaks them, and the CLI's light commands load nothing heavy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "runtime/runner.py",
            "import rayctl.providers.base",
            "layers: cli > api > ops > autoscaler > providers > runtime > config BROKEN",
        ),
        (
            "ops/status.py",
            "import rayctl.api",
            "layers: cli > api > ops > autoscaler > providers > runtime > config BROKEN",
        ),
        ("cli/status.py", "import boto3", "only the aws provider imports boto3 BROKEN"),
        ("autoscaler/scheduler.py", "import rayctl.errors", "imports nothing of rayctl BROKEN"),
        ("ops/status.py", "import ray", "only the runtime's Ray adapter imports ray BROKEN"),
    ],
    ids=[
        "runtime-imports-providers",
        "ops-imports-api",
        "cli-imports-boto3",
        "impure-scheduler",
        "ray-in-ops",
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, broken: str
):
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "rayctl", tree / "rayctl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    source = tree / "rayctl" / module
    source.write_text(f"{source.read_text()}\n{line}  # a deliberate back-import\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout
    assert "1 broken" in result.stdout
