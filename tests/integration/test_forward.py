"""`rayctl dashboard` and `rayctl port-forward` on real sshd hosts (tests/sshhosts.py): the
printed URL reaches the head's dashboard (with the cluster's Ray token added, which is never
printed) and a port that only the head's loopback serves; once the command ends, the local
port is closed and nothing it started remains."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from rayctl.paths import ray_token_file
from tests.conftest import wait_for
from tests.integration.test_onprem_cluster import onprem  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

RAYCTL = str(Path(sys.executable).parent / "rayctl")


@dataclass
class Held:
    proc: subprocess.Popen
    url: str

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 0


@contextlib.contextmanager
def held(*args: str, timeout_s: float = 120) -> Iterator[Held]:
    """Run `rayctl ARGS` (a command that holds a port open), yield once it printed its URL;
    end it with SIGTERM and check it exited 0 and closed the port."""
    proc = subprocess.Popen(
        [RAYCTL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        printed = b""  # read from the pipe itself: a buffered reader would hide what it holds
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while not printed.endswith(b"}\n" if "--json" in args else b"\n"):
                assert selector.select(timeout_s), f"rayctl {args}: no URL in {timeout_s} s"
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"rayctl {args} ended: {proc.wait(10)} {proc.stderr.read()}"
                printed += chunk
        text = printed.decode()
        yield Held(proc, json.loads(text)["url"] if "--json" in args else text.strip())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, proc.stderr.read()


def _get(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, bytes]:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _answer(url: str) -> tuple[int, bytes] | None:
    """The answer, or None while nothing answers (the server is still starting)."""
    with contextlib.suppress(OSError):  # urllib's errors, a connection closed unanswered
        return _get(url)
    return None


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _session_processes(sid: int) -> list[int]:
    """Processes still in the session rayctl led (it was started with a session of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid:  # stat's 6th field: the session id
                    found.append(int(entry.name))
    return found


def test_dashboard_and_port_forward_through_ssh(
    onprem,  # noqa: F811 - the fixture imported above
    cli,
    tmp_path: Path,
    rayctl_home: Path,
):
    cluster = onprem(workers=1, min_workers=0)
    assert cli("up", cluster.config, "--yes").code == 0
    secret = ray_token_file(rayctl_home, cluster.name).read_text().strip()

    with held("dashboard", str(cluster.config)) as dashboard:
        key = parse_qs(urlsplit(dashboard.url).query)["rayctl_key"][0]
        # The dashboard's API, through the tunnel, with the token added by rayctl.
        status, body = _get(f"{dashboard.base}/api/version?rayctl_key={key}")
        assert status == 200, body
        assert json.loads(body)["ray_version"] == "2.60.0"
        # A browser: the printed URL gives the dashboard's page and a cookie with the key,
        # which then carries later requests.
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        status, page = _get(dashboard.url, browser)
        assert status == 200 and b"Ray Dashboard" in page
        status, body = _get(f"{dashboard.base}/api/jobs/", browser)
        assert (status, json.loads(body)) == (200, [])
        # Without this run's key (another user of this machine): refused.
        status, _ = _get(f"{dashboard.base}/api/jobs/")
        assert status == 401
        # Listening on 127.0.0.1 only: this machine's address on the hosts' bridge is refused.
        with socket.socket() as sock:
            assert sock.connect_ex((cluster.head.address.rsplit(".", 1)[0] + ".1",
                                    dashboard.port)) != 0  # fmt: skip
    assert _closed(dashboard.port)
    assert _session_processes(dashboard.proc.pid) == []
    assert secret.encode() not in dashboard.proc.stdout.read() + dashboard.proc.stderr.read()

    # A server only the head's own loopback reaches (Serve listens there by default).
    served = tmp_path / "served"
    served.mkdir()
    (served / "marker.txt").write_text("from the head\n")
    server = subprocess.Popen(
        ["ip", "netns", "exec", cluster.head.netns, sys.executable, "-m", "http.server",
         "18123", "--bind", "127.0.0.1", "--directory", str(served)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            local = free.getsockname()[1]
        with held("port-forward", str(cluster.config), f"18123:{local}", "--json") as forward:
            assert forward.url == f"http://127.0.0.1:{local}/"
            answer = wait_for(lambda: _answer(forward.url + "marker.txt"), what="the server")
            assert answer == (200, b"from the head\n")
        assert _closed(local)
        assert _session_processes(forward.proc.pid) == []
    finally:
        server.terminate()
        server.wait(timeout=10)
