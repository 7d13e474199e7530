"""The CLI starts without loading Ray or any cloud SDK (they load only when used)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("ray", "boto3", "botocore", "google.cloud", "azure", "paramiko")


def test_help_loads_no_sdk():
    code = (
        "import sys; from rayctl.cli.app import run; run(['--help']); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        f"or m.startswith('google.cloud')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
