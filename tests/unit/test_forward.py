"""The local ends of `rayctl dashboard` and `port-forward`, on real sockets of this machine:
the TCP forwarder (both ways, half-closes, refusals, its port freed) and the dashboard proxy
(the token added, only this run's key admitted, the key never passed on)."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer

from rayctl.cli.forward import _port_spec
from rayctl.ops.dashboard_proxy import DashboardProxy
from rayctl.ops.forward import Forwarder
from rayctl.runtime.runner import TunnelRefused
from tests.conftest import wait_for


class _Shout(socketserver.BaseRequestHandler):
    """Reads until the client's half-close, then answers with what it read, upper-cased."""

    def handle(self) -> None:
        got = b""
        while chunk := self.request.recv(4096):
            got += chunk
        self.request.sendall(got.upper())


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True  # a handler left waiting must not hold the test up
    block_on_close = False


@pytest.fixture
def shout() -> Iterator[tuple[str, int]]:
    with _Server(("127.0.0.1", 0), _Shout) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server.server_address
        server.shutdown()


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_the_forwarder_carries_both_ways_past_a_half_close_and_frees_its_port(shout):
    errors: list[str] = []
    with Forwarder(lambda: socket.create_connection(shout), on_error=errors.append) as forwarder:
        assert forwarder._listener.getsockname()[0] == "127.0.0.1"
        for _ in range(2):  # a connection each
            with socket.create_connection(("127.0.0.1", forwarder.port)) as client:
                client.sendall(b"ping " * 50_000)  # more than one chunk
                client.shutdown(socket.SHUT_WR)  # the answer comes after this
                answer = b""
                while chunk := client.recv(65536):
                    answer += chunk
            assert answer == b"PING " * 50_000
        held = socket.create_connection(("127.0.0.1", forwarder.port))
        wait_for(lambda: forwarder._streams, what="the connection carried")
    assert _refused(forwarder.port)
    held.settimeout(10)
    assert _ended(held)  # a carried connection is closed with the forwarder
    held.close()
    assert errors == []


def _ended(sock: socket.socket) -> bool:
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def test_a_refused_connection_is_reported_and_closed():
    def refuse() -> socket.socket:
        raise TunnelRefused("node h could not connect to 127.0.0.1:9: Connection refused")

    errors: list[str] = []
    with (
        Forwarder(refuse, on_error=errors.append) as forwarder,
        socket.create_connection(("127.0.0.1", forwarder.port)) as client,
    ):
        client.settimeout(10)
        assert client.recv(10) == b""
    assert errors == ["node h could not connect to 127.0.0.1:9: Connection refused"]


def test_a_taken_local_port_is_a_clear_error():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port}"):
            Forwarder(lambda: taken, local_port=port, on_error=print)


@pytest.mark.parametrize(
    ("spec", "ports"), [("8000", (8000, 0)), ("8000:18000", (8000, 18000)), ("1:65535", (1, 65535))]
)
def test_port_specs(spec: str, ports: tuple[int, int]):
    assert _port_spec(spec) == ports


@pytest.mark.parametrize("spec", ["0", "65536", "8000:0", "a", "8000:", ":8000", "1:2:3"])
def test_bad_port_specs(spec: str):
    with pytest.raises(typer.BadParameter, match="8000 or 8000:18000"):
        _port_spec(spec)


class _Echo(BaseHTTPRequestHandler):
    """Answers with what it was sent: path, Authorization and Cookie headers."""

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "cookie": self.headers.get("Cookie"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[str]:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Echo) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


def _get(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, bytes]:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_proxy_adds_the_token_and_admits_only_this_runs_key(dashboard, tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    with DashboardProxy(dashboard, token) as proxy:
        base = f"http://127.0.0.1:{proxy.port}"
        assert proxy.url == f"{base}/?rayctl_key={proxy.key}"
        status, body = _get(f"{base}/api/jobs/?a=1&rayctl_key={proxy.key}&b=2")
        assert status == 200
        seen = json.loads(body)
        assert seen["authorization"] == "Bearer s3cret"
        assert seen["path"] == "/api/jobs/?a=1&b=2"  # the key stays here
        # A browser: the printed URL sets a cookie that admits the next requests.
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        assert _get(proxy.url, browser)[0] == 200
        status, body = _get(f"{base}/api/version", browser)
        assert status == 200 and json.loads(body)["path"] == "/api/version"
        # Without the key, or with another one: refused, and nothing reaches the dashboard.
        assert _get(f"{base}/api/version")[0] == 401
        assert _get(f"{base}/api/version?rayctl_key=x{proxy.key}")[0] == 401
        port = proxy.port
    assert _refused(port)


def test_without_token_auth_the_proxy_sends_no_token(dashboard):
    with DashboardProxy(dashboard, None) as proxy:
        status, body = _get(f"http://127.0.0.1:{proxy.port}/x?rayctl_key={proxy.key}")
    assert status == 200 and json.loads(body)["authorization"] is None


def test_a_dashboard_that_does_not_answer_is_a_502():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with DashboardProxy(dead, None) as proxy:
        status, body = _get(proxy.url)
    assert status == 502 and b"did not answer" in body
