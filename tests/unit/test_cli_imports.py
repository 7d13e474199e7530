"""The CLI starts without loading Ray, any cloud SDK, jinja2 or the autoscaler's reconciler:
they load only when a command uses them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("ray", "boto3", "botocore", "google.cloud", "azure", "paramiko", "jinja2")
LOCAL = REPO / "cluster-configs" / "local.yaml"
AWS = REPO / "cluster-configs" / "aws.yaml"
GCP = REPO / "cluster-configs" / "gcp.yaml"
AZURE = REPO / "cluster-configs" / "azure.yaml"


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", str(LOCAL)],
        ["validate", str(AWS)],
        ["validate", str(GCP)],
        ["validate", str(AZURE)],
        ["schema"],
    ],
    ids=["help", "validate-local", "validate-aws", "validate-gcp", "validate-azure", "schema"],
)
def test_light_commands_load_nothing_heavy(args: list[str]):
    code = (
        "import sys; from rayctl.cli.app import run; "
        f"code = run({args!r}); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{HEAVY!r} or m.startswith(('google.cloud', 'google.auth', 'google.api_core')) "
        "or m == 'rayctl.autoscaler.reconciler'); "
        "print('exit', code, heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "exit 0 []"
