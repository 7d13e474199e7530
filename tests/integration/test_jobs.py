"""Jobs under Ray's job supervision, through the installed `rayctl` on one real local cluster:
the id comes first, output streams, the exit code is the job's; an interrupted or lost client
leaves the job running and says how to find it; `jobs` lists, `stop` stops (its driver's PID
gone); the working dir comes through untouched; and `down` leaves no driver behind.

The tests share one cluster (starting one costs most of a test's time); the last one takes it
down."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_cluster import CliCluster
from tests.conftest import cluster_pids, wait_for

pytestmark = pytest.mark.integration

# Writes its PID to argv[1], prints up to argv[2] ticks 0.3 s apart (fewer once the file
# argv[4] exists, when given), then "done", and exits with argv[3].
TICKS = """\
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
for i in range(int(sys.argv[2])):
    if len(sys.argv) > 4 and os.path.exists(sys.argv[4]):
        break
    print("tick", i, flush=True)
    time.sleep(0.3)
print("done")
sys.exit(int(sys.argv[3]))
"""


class Cluster(CliCluster):
    def jobs(self) -> dict[str, dict]:
        listed = self.rayctl("jobs", self.name, "--json")
        assert listed.returncode == 0, listed.stderr
        return {job["job_id"]: job for job in json.loads(listed.stdout)["jobs"]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    scratch = tmp_path_factory.mktemp("jobs")
    (scratch / "ticks.py").write_text(TICKS)
    # No workers: the jobs here need no task slots, and each node costs a Ray start.
    with Cluster.running(
        scratch, "jobs", available_node_types={"ray.head.default": {"resources": {"CPU": 1}}}
    ) as made:
        yield made


def _pid_file(cluster: Cluster, label: str) -> Path:
    return cluster.scratch / f"{label}.pid"


def _alive(pid: int) -> bool:
    """Whether `pid` is a process that has not ended (a zombie has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_submit_prints_the_id_first_streams_and_exits_with_the_jobs_code(cluster: Cluster):
    pid_file = _pid_file(cluster, "plain")
    proc = cluster.popen(
        "submit",
        cluster.config,
        cluster.scratch / "ticks.py",
        pid_file,
        "2",
        "5",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream: what came first is first
    )
    merged, _ = proc.communicate(timeout=120)
    assert proc.returncode == 5, merged
    lines = merged.splitlines()
    job_id = lines[0].split()[1]
    assert lines[0] == f"Job {job_id} submitted; Ctrl-C leaves it running."
    assert lines[1:] == ["tick 0", "tick 1", "done", f"Job {job_id} exited with 5."]
    listed = cluster.jobs()[job_id]
    assert (listed["status"], listed["exit_code"]) == ("FAILED", 5)
    assert listed["entrypoint"].endswith(f"-u ticks.py {pid_file} 2 5")
    assert listed["start_time"] <= listed["end_time"] <= time.time()


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGPIPE, 141)]
)
def test_an_interrupted_or_lost_client_leaves_the_job_running(
    cluster: Cluster, signum: signal.Signals, code: int
):
    pid_file = _pid_file(cluster, signum.name)
    gate = cluster.scratch / f"{signum.name}.gate"  # the job ticks until the test opens it
    proc = cluster.popen(
        "submit",
        cluster.name,
        cluster.scratch / "ticks.py",
        pid_file,
        "1000",
        "3",
        gate,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline() == "tick 0\n"
    if signum is signal.SIGPIPE:
        proc.stdout.close()  # the reader goes away: rayctl's next line meets a broken pipe
    else:
        proc.send_signal(signum)
    stderr = proc.stderr.read()
    assert proc.wait(timeout=30) == code, stderr
    job_id = stderr.split()[1]
    assert f"rayctl {signum.name}: job {job_id} keeps running on cluster" in stderr
    assert f"`rayctl logs {cluster.name} {job_id} --follow`" in stderr
    assert f"`rayctl stop {cluster.name} {job_id}`" in stderr
    pid = int(pid_file.read_text())
    assert _alive(pid) and cluster.jobs()[job_id]["status"] == "RUNNING"
    # Later, the whole output and the job's own exit code.
    gate.touch()
    followed = cluster.rayctl("logs", cluster.name, job_id, "--follow")
    assert followed.returncode == 3, followed.stderr
    ticks = followed.stdout.count("tick ")
    assert ticks > 1 and followed.stdout == "".join(f"tick {i}\n" for i in range(ticks)) + "done\n"
    assert followed.stderr.strip().endswith(f"Job {job_id} exited with 3.")
    assert cluster.jobs()[job_id]["status"] == "FAILED"


def test_stop_ends_a_running_job_and_its_driver(cluster: Cluster):
    pid_file = _pid_file(cluster, "stopped")
    detached = cluster.rayctl(
        "submit", "--detach", cluster.config, cluster.scratch / "ticks.py", pid_file, "1000", "0"
    )
    assert detached.returncode == 0, detached.stderr
    job_id = detached.stdout.strip()
    pid = wait_for(lambda: pid_file.exists() and int(pid_file.read_text() or 0), 60, "the job")
    assert _alive(pid)
    stopped = cluster.rayctl("stop", cluster.config, job_id)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == f"Job {job_id}: STOPPED.\n"
    assert not _alive(pid)  # right after `stop` returns
    again = cluster.rayctl("stop", cluster.name, job_id)
    assert again.returncode == 0 and again.stdout == f"Job {job_id}: STOPPED.\n"
    assert cluster.jobs()[job_id]["exit_code"] is None
    followed = cluster.rayctl("logs", cluster.name, job_id, "--follow")
    assert followed.returncode == 1 and "was stopped before it ended" in followed.stderr
    unknown = cluster.rayctl("stop", cluster.name, "raysubmit_0000000000000000")
    assert unknown.returncode == 4 and "no job raysubmit_0000000000000000" in unknown.stderr


def test_the_working_dir_is_the_users_alone(cluster: Cluster):
    work = cluster.scratch / "work"
    (work / "sub").mkdir(parents=True)
    mine = {"output.log": "my output\n", "pid": "not a pid\n", "sub/exit_code": "mine\n"}
    for name, text in mine.items():
        (work / name).write_text(text)
    script = cluster.scratch / "reads.py"
    script.write_text(
        "import os\n"
        "for name in sorted(['output.log', 'pid', 'sub/exit_code']):\n"
        "    print(name, repr(open(name).read()))\n"
        "print('files', sorted(os.listdir('.')))\n"
        "open('output.log', 'w').write('overwritten by the job in its own copy')\n"
        "print('job', os.environ['RAYCTL_JOB_ID'])\n"
    )
    ran = cluster.rayctl("submit", "--working-dir", work, cluster.config, script)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[:4] == [
        "output.log 'my output\\n'",
        "pid 'not a pid\\n'",
        "sub/exit_code 'mine\\n'",
        "files ['output.log', 'pid', 'reads.py', 'sub']",
    ]
    assert lines[4] == f"job {ran.stderr.split()[1]}"  # RAYCTL_JOB_ID is the job's id
    assert {n: (work / n).read_text() for n in mine} == mine  # the local dir, untouched
    # What was staged on the head for Ray to package is gone once Ray has it.
    head = next((cluster.scratch / "home" / "clusters" / cluster.name / "nodes").iterdir())
    assert list((head / ".rayctl" / "jobs").iterdir()) == []


def test_down_stops_running_jobs_and_leaves_no_driver(cluster: Cluster):
    """Last: takes the shared cluster down."""
    pid_file = _pid_file(cluster, "down")
    detached = cluster.rayctl(
        "submit", "--detach", cluster.name, cluster.scratch / "ticks.py", pid_file, "1000", "0"
    )
    assert detached.returncode == 0, detached.stderr
    pid = wait_for(lambda: pid_file.exists() and int(pid_file.read_text() or 0), 60, "the job")
    down = cluster.rayctl("down", cluster.config, "--yes", timeout_s=300)
    assert down.returncode == 0 and "nothing is left" in down.stdout, down.stderr
    assert not _alive(pid)  # right after `down` returns
    assert cluster_pids(cluster.name) == []
