"""A real private registry for docker-mode tests: Debian's docker-registry (the CNCF
distribution server) on a loopback port, with one user (htpasswd, bcrypt)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

REGISTRY = "/usr/bin/docker-registry"


@dataclass(frozen=True)
class Registry:
    server: str  # host:port
    username: str
    password: str
    registries_conf: Path  # tells podman the server speaks plain HTTP


def require_registry() -> None:
    if not Path(REGISTRY).exists():
        reason = "registry tests need docker-registry (scripts/test.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def registry(
    root: Path, username: str = "alice", password: str = "pw 's3cret' $x", host: str = "127.0.0.1"
) -> Iterator[Registry]:
    """A registry on `host` (loopback, or a test network's bridge address that its hosts
    reach), on a free port."""
    root.mkdir(parents=True, exist_ok=True)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    (root / "htpasswd").write_text(f"{username}:{hashed}\n")
    port = _free_port(host)
    (root / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root}/data\nhttp:\n  addr: {host}:{port}\n"
        f"auth:\n  htpasswd:\n    realm: test\n    path: {root}/htpasswd\n"
    )
    server = f"{host}:{port}"
    conf = root / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{server}"\ninsecure = true\n')
    log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([REGISTRY, "serve", str(root / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"docker-registry did not start: {(root / 'registry.log').read_text()}"
                )
            time.sleep(0.1)
        yield Registry(server, username, password, conf)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
