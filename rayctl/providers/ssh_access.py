"""What every provider whose nodes are reached over SSH shares (ssh, aws, gcp and azure):
one SSHRunner per node (one connection reused by every step), host keys trusted on first use
and pinned per cluster, how long to keep trying a host that does not answer, the private
key's path (the config's, or the cloud providers' own) and mode, the `ray start` flags such
nodes need, and handing the head what its autoscaler needs to reach the workers (the key and
pinned host keys, readable only by the head's user; file mounts and the wheelhouse from their
copies on the head).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shlex
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

from rayctl.config.exposure import PINNED_RAY_PORTS
from rayctl.config.schema import ClusterConfig
from rayctl.errors import ProviderError
from rayctl.paths import cluster_dir, key_file
from rayctl.runtime import head_paths
from rayctl.runtime.nodes import Node, RayStart
from rayctl.runtime.runner import CommandRunner, put_private
from rayctl.runtime.ssh_runner import SSHRunner, check_key_mode, merge_known_hosts


def connect_attempts_s(default: float) -> float:
    """How long to keep trying a host that refuses or does not answer before calling it
    down: RAYCTL_SSH_CONNECT_ATTEMPTS_S, else the provider's default (a cloud instance
    takes longer to boot than an on-prem host)."""
    return float(os.environ.get("RAYCTL_SSH_CONNECT_ATTEMPTS_S", default))


def key_path(config: ClusterConfig, home: Path, key_name: Callable[[], str]) -> Path:
    """The private key nodes are reached with: the config's auth.ssh_private_key, else the
    one rayctl creates for the cluster under `home`. `key_name` is asked only then (AWS's
    may look up or import a key pair)."""
    given = config.auth.ssh_private_key
    if given:
        return Path(os.path.expanduser(given))
    return key_file(home, key_name())


class SSHAccess:
    """A cluster's SSH access to its nodes, as one provider process sees it."""

    def __init__(
        self, config: ClusterConfig, *, home: Path, key_path: Path | None, attempts_s: float
    ) -> None:
        assert config.auth.ssh_user  # the provider's checks require it
        self.cluster_name = config.cluster_name
        self.user: str = config.auth.ssh_user
        self.key_path = key_path
        self.state_dir = cluster_dir(home, config.cluster_name)
        self._proxy_command = config.auth.ssh_proxy_command
        self._attempts_s = attempts_s
        self._runners: dict[tuple[str, str], SSHRunner] = {}
        self._lock = threading.Lock()

    @property
    def known_hosts(self) -> Path:
        """The nodes' host keys, pinned per cluster on first use."""
        return self.state_dir / "known_hosts"

    def check_key(self) -> None:
        """The private key (if the config names one) must exist and be readable by its
        owner only (ssh refuses others)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.key_path is None:
            return
        check_key_mode(self.key_path)
        if not self.key_path.is_file():
            raise ProviderError(
                f"auth.ssh_private_key: key file {self.key_path} not found; give the path of "
                "the private key the hosts accept, or leave ssh_private_key out to use the "
                "ssh agent and ~/.ssh's default keys"
            )

    def runner(self, node_id: str, address: str) -> SSHRunner:
        """The node's runner, made once per (node, address) and reused."""
        with self._lock:
            runner = self._runners.get((node_id, address))
            if runner is None:
                runner = self._runners[(node_id, address)] = SSHRunner(
                    address,
                    node_id=node_id,
                    user=self.user,
                    key_path=self.key_path,
                    known_hosts=self.known_hosts,
                    proxy_command=self._proxy_command,
                    connect_attempts_s=self._attempts_s,
                )
            return runner

    @staticmethod
    def ray_start_args(node: Node) -> RayStart:
        """Ray on its own host advertises the address the cluster reaches it at."""
        return RayStart([f"--node-ip-address={node.internal_ip}"])

    @classmethod
    def cloud_ray_start_args(cls, node: Node) -> RayStart:
        """On cloud nodes, the ports Ray would pick at random are pinned too, so that the
        check of extra firewall rules knows every port Ray listens on."""
        pinned = [f"{flag}={port}" for flag, port in PINNED_RAY_PORTS.items()]
        return RayStart([*cls.ray_start_args(node).args, *pinned])

    def prepare_head(
        self, config: ClusterConfig, runner: CommandRunner, *, created_key: str | None = None
    ) -> ClusterConfig:
        """Copy the cluster's key and pinned host keys to where the head's own provider looks
        for them (its RAYCTL_HOME is ~/.rayctl). A key the config names goes with the
        cluster's state and the config points at it; a key rayctl created for the cluster
        goes to `created_key` (a path relative to the head's home), where the provider finds
        it by name. Returns the config as the head's monitor sees it."""
        secrets = head_paths.cluster_secrets(self.cluster_name)
        head_known = posixpath.join(secrets, "known_hosts")
        with tempfile.TemporaryDirectory() as scratch:
            merged = Path(scratch, "known_hosts")
            merged.write_text(self._merged_known_hosts(runner, head_known))
            files = {str(merged): head_known}
            update: dict[str, Any] = {}
            if config.auth.ssh_private_key:  # else the head logs in with its own keys, as Ray
                files[str(self.key_path)] = posixpath.join(secrets, "ssh_key")
                update["auth"] = config.auth.model_copy(
                    update={"ssh_private_key": "~/" + posixpath.join(secrets, "ssh_key")}
                )
            elif created_key is not None:
                files[str(self.key_path)] = created_key
            put_private(runner, files)  # no other user of the head reads the key
        return head_config(config, **update)

    def _merged_known_hosts(self, runner: CommandRunner, head_known: str) -> str:
        """Ours, plus the pins the head's monitor made for hosts we never saw (workers it
        launched): every `up` would otherwise forget them, and trust those hosts anew."""
        lines: list[str] = []
        result = runner.run(
            f'cat "$HOME"/{shlex.quote(head_known)} 2>/dev/null || true', stream=lines.append
        )
        if not result.ok:
            raise ProviderError(f"could not read the head's pinned host keys:\n{result.tail}")
        try:
            ours = self.known_hosts.read_text()
        except FileNotFoundError:
            ours = ""
        return merge_known_hosts(ours, "\n".join(lines))


def head_config(config: ClusterConfig, **update: Any) -> ClusterConfig:
    """The config as the head's monitor sees it: file mounts and the wheelhouse come from
    their copies on the head (bootstrap keeps them there), for the workers it launches."""
    changes: dict[str, Any] = {"file_mounts": {t: t for t in config.file_mounts}, **update}
    runtime = config.rayctl.runtime
    if runtime.wheelhouse:
        changes["rayctl"] = config.rayctl.model_copy(
            update={"runtime": runtime.model_copy(update={"wheelhouse": head_paths.WHEELHOUSE})}
        )
    return config.model_copy(update=changes)


def write_private_key(path: Path, material: str) -> None:
    """Write a private key readable only by its owner, atomically (no window at 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(material if material.endswith("\n") else material + "\n")
    os.replace(tmp, path)


def public_key_line(key_path: Path, *, create: bool, comment: str) -> str:
    """`TYPE BASE64 COMMENT` of the private key at `key_path`; with `create`, a new ed25519
    key is made there (0600) first when there is none (a key rayctl makes for the cluster)."""
    if create and not key_path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        write_private_key(key_path, pem.decode())
    check_key_mode(key_path)
    try:
        key = paramiko.PKey.from_path(key_path)
    except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
        raise ProviderError(f"cannot read the ssh key {key_path}: {exc}") from None
    return f"{key.get_name()} {key.get_base64()} {comment}"
