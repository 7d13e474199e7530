"""The CLI as a new user meets it, through the installed `rayctl` on a real local cluster:
arguments pass through to the program, streams stay apart, stdin reaches it, exit codes are
the program's, and results go to stdout while progress and hints go to stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RAYCTL = Path(sys.executable).parent / "rayctl"
ARGV_JOB = "import sys\nprint('argv', sys.argv[1:])\nprint('to stderr', file=sys.stderr)\n"
EXIT_JOB = "import sys\nprint('bye')\nsys.exit(int(sys.argv[1]))\n"


def rayctl(*args: object, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAYCTL, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_the_cli_on_a_real_cluster(make_cluster, tmp_path: Path):
    cluster = make_cluster(
        "streams", available_node_types={"ray.head.default": {"resources": {"CPU": 1}}}
    )
    config = cluster.config
    up = rayctl("up", config, "--yes")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith(f"Cluster '{cluster.name}' is up") and "Next:" not in up.stdout
    assert "Next:" in up.stderr and "examples/" not in up.stderr
    assert ": waiting-for-node" in up.stderr and "waiting-for-ssh" not in up.stderr

    # Unchanged: one progress line (no per-node stages), then the result.
    again = rayctl("up", config, "--yes")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert again.stderr.splitlines() == [f"Bringing up cluster {cluster.name} (local)"]

    # exec: the command's own options, its streams apart, stdin forwarded, its exit code.
    listed = rayctl("exec", config, "ls", "-la", "-d", ".")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("drwx") and listed.stdout.rstrip().endswith(" .")
    streams = rayctl("exec", config, "echo out; echo err >&2; exit 7")
    assert (streams.returncode, streams.stdout, streams.stderr) == (7, "out\n", "err\n")
    assert rayctl("exec", config, "cat", stdin="x\ny\n").stdout == "x\ny\n"
    separated = rayctl("exec", "-n", cluster.name, config, "--", "echo", "--version")
    assert separated.stdout == "--version\n"

    # submit: everything after SCRIPT is the script's; `SCRIPT -- ARGS` still works.
    script = tmp_path / "argv.py"
    script.write_text(ARGV_JOB)
    for args in (["--tasks", "1", "-l"], ["--", "--tasks", "1", "-l"]):
        job = rayctl("submit", config, script, *args)
        assert job.returncode == 0, job.stderr
        assert "argv ['--tasks', '1', '-l']" in job.stdout
    exits = tmp_path / "exits.py"
    exits.write_text(EXIT_JOB)
    failed = rayctl("submit", config, exits, "5")
    assert failed.returncode == 5 and "bye" in failed.stdout
    assert "exited with 5." in failed.stderr and "exited" not in failed.stdout

    # logs --follow passes the job's code on and says so on stderr.
    detached = rayctl("submit", "--detach", config, exits, "6")
    assert detached.returncode == 0, detached.stderr
    job_id = detached.stdout.strip()
    followed = rayctl("logs", config, job_id, "--follow")
    assert followed.returncode == 6 and followed.stdout == "bye\n"
    assert f"Job {job_id} exited with 6." in followed.stderr
    shown = rayctl("logs", config, job_id)
    assert shown.returncode == 0 and shown.stdout == "bye\n" and "exited" not in shown.stderr

    # status: the table's columns are the JSON's names.
    table = rayctl("status", config).stdout.splitlines()
    header = next(line.split() for line in table if line.startswith("id "))
    row = json.loads(rayctl("status", config, "--json").stdout)["nodes"][0]
    assert set(header) <= set(row) and {"node_type", "stage", "idle_s"} <= set(header)

    version = rayctl("--version")
    assert version.returncode == 0 and version.stdout.strip().endswith("(Ray 2.60.0)")
