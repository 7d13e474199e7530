"""Docker mode (Ray's `docker:` section): each node runs its Ray inside one container on its
host, and every command rayctl runs on the node runs in that container.

DockerRunner wraps the runner of the node's host (any provider's). The container is started
once with host networking and kept across Ray restarts; it is re-created when what it was
created from changes (image, run options, mounts: a hash in its `rayctl.hash` label). File
mounts are synced to the host and bind-mounted into the container; initialization_commands
run on the host (bootstrap uses `host`).

Nodes that share this machine (the local provider) keep their own home: the container sees
the node's home at the same path (HOME), sees this machine's processes (--pid=host, so the
provider's PID files stay true) and gets the runtime's Python read-only.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import secrets
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import rayctl
from rayctl.config.schema import ClusterConfig, RegistryLogin
from rayctl.errors import RayctlError
from rayctl.runtime.nodes import Node, NodeKind
from rayctl.runtime.runner import CommandResult, CommandRunner, TransferError, put_private
from rayctl.templates import shell_path

LABEL_CLUSTER = "rayctl.cluster"
LABEL_NODE = "rayctl.node"
LABEL_HASH = "rayctl.hash"
LABEL_PULLED = "rayctl.pulled"  # "1": rayctl pulled the image, so `down` removes it too
LABEL_REGISTRY = "rayctl.registry"  # the registry the host's engine logged in to for it
# Ray's sizing of /dev/shm (the object store lives there): 30 % of the host's available
# memory plus 10 %, at most 200 GB.
SHM_FRACTION = 0.3 * 1.1
SHM_MAX_BYTES = 200 * 10**9
PULL_TIMEOUT_S = 1800.0
STOP_TIMEOUT_S = 10


class ContainerError(RayctlError):
    """The node's container could not be prepared; the message says what to do."""


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a node's container is created from; `digest` names it in the label."""

    engine: str  # "docker" or "podman"
    name: str
    image: str
    pull: bool  # pull before every start (else only when the image is missing)
    run_options: tuple[str, ...]
    mounts: tuple[tuple[str, str], ...]  # (host path, container path); ~ is a home
    read_only: tuple[str, ...]  # host paths seen read-only at the same path
    share_host: bool  # the node is this machine: its home, its processes
    detect_shm: bool
    detect_gpu: bool
    labels: tuple[tuple[str, str], ...]
    login: RegistryLogin | None = None  # not part of the digest: new credentials, same image

    @classmethod
    def of(cls, config: ClusterConfig, node: Node) -> ContainerSpec | None:
        docker = config.docker_for(node.node_type)
        if docker is None:
            return None
        head = node.kind is NodeKind.HEAD
        image = (docker.head_image if head else docker.worker_image) or docker.image
        assert image and docker.container_name  # the loader refuses docker mode without them
        share = config.provider.capabilities.shares_filesystem
        own = docker.head_run_options if head else docker.worker_run_options
        login = config.rayctl.registry_login
        return cls(
            engine="podman" if docker.use_podman else "docker",
            name=f"{docker.container_name}-{node.id}",
            image=image,
            pull=docker.pull_before_run,
            run_options=(*docker.run_options, *own),
            # A shared node's file mounts land in its home, which the container sees whole.
            mounts=() if share else tuple((_staged(r), r) for r in sorted(config.file_mounts)),
            read_only=_runtime_dirs() if share else (),
            share_host=share,
            detect_shm=not docker.disable_shm_size_detection,
            detect_gpu=not docker.disable_automatic_runtime_detection,
            labels=(
                (LABEL_CLUSTER, config.cluster_name),
                (LABEL_NODE, node.id),
                *(() if login is None else ((LABEL_REGISTRY, login.server),)),
            ),
            login=login,
        )

    @property
    def digest(self) -> str:
        """What decides the container (not detected values such as the shm size, which vary
        from start to start and must not re-create it)."""
        keys = ("engine", "image", "run_options", "mounts", "read_only", "share_host")
        keys += ("detect_shm", "detect_gpu")
        text = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def host_path(self, remote: str) -> str:
        """Where a file mount's target `remote` is synced to on the host."""
        for staged, target in self.mounts:
            if target == remote:
                return staged
        return remote


def _staged(remote: str) -> str:
    """A file mount's place on the host: one directory per target, under the host's home."""
    key = hashlib.sha256(remote.encode()).hexdigest()[:12]
    return f"~/.rayctl/docker/mounts/{key}/{posixpath.basename(remote.rstrip('/')) or 'root'}"


def _runtime_dirs() -> tuple[str, ...]:
    """This machine's directories the runtime's Python (for nodes on this machine, the one
    running rayctl: install.runtime_python) needs: the venv, the Python it was made from,
    and rayctl's own tree when it lies outside them (an editable install)."""
    dirs = {sys.prefix, sys.base_prefix, str(Path(rayctl.__file__).resolve().parent.parent)}
    kept: list[str] = []
    for d in sorted(dirs, key=len):  # skip any inside another
        if not any(d == k or d.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(d)
    return tuple(kept)


def shm_size_bytes(mem_available_kb: int) -> int:
    return min(int(mem_available_kb * 1024 * SHM_FRACTION), SHM_MAX_BYTES)


def _has_option(options: Sequence[str], *names: str) -> bool:
    return any(o == n or o.startswith(n + "=") for o in options for n in names)


def run_command(
    spec: ContainerSpec, *, host_home: str, container_home: str, detected: Sequence[str]
) -> str:
    """The `run` that creates the node's container, as one shell command (every value
    quoted). `detected` are options found on the host (shm size, GPU runtime) and labels."""
    args = [spec.engine, "run", "-d", "-i", "--name", spec.name, "--net=host"]
    for key, value in (*spec.labels, (LABEL_HASH, spec.digest)):
        args += ["--label", f"{key}={value}"]
    args += ["-e", "LC_ALL=C.UTF-8", "-e", "LANG=C.UTF-8"]
    # Commands run in the home, as over SSH (rayctl names files relative to it).
    args += ["-w", host_home if spec.share_host else container_home]
    if not spec.share_host:  # an init reaps what detached processes leave (not host PIDs')
        args.append("--init")
    else:
        args += ["--pid=host", "-e", f"HOME={host_home}"]
        args += ["-v", f"{host_home}:{host_home}"]
    for path in spec.read_only:
        args += ["-v", f"{path}:{path}:ro"]
    for staged, target in spec.mounts:
        args += ["-v", f"{_expand(staged, host_home)}:{_expand(target, container_home)}"]
    args += [*detected, *spec.run_options, spec.image, "bash"]
    return shlex.join(args)


def login_command(engine: str, login: RegistryLogin, password: str) -> str:
    """The engine's login to the registry, the password read on stdin from the file
    `password` on the host: never on a command line, where `ps` and logs would show it."""
    args = [engine, "login", "--username", login.username, "--password-stdin", login.server]
    return f"{shlex.join(args)} < {shell_path(password)}"


def exec_command(
    spec: ContainerSpec,
    command: str,
    *,
    env: Mapping[str, str] | None = None,
    interactive: bool = False,
    terminal: bool = False,
) -> str:
    """`exec` of `command` (run by bash) in the node's container, as one shell command."""
    args = [spec.engine, "exec", "-i"]
    if terminal:
        args.append("-t")
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    shell = ["bash", "-l"] if interactive and not command else ["bash", "-c", command]
    return shlex.join([*args, spec.name, *shell])


def as_container(runner: CommandRunner) -> DockerRunner | None:
    """`runner` as a DockerRunner, also when a proxy wraps it (the autoscaler's fence, whose
    calls stay fenced), or None for a node without a container."""
    return cast(DockerRunner, runner) if getattr(runner, "in_container", False) else None


def _expand(path: str, home: str) -> str:
    if path == "~" or path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    return path


class DockerRunner:
    """A CommandRunner for a node in docker mode: commands and files go into the node's
    container through `host`, the runner of the machine it runs on."""

    in_container = True  # seen through proxies of runners too (as_container)

    def __init__(self, host: CommandRunner, spec: ContainerSpec) -> None:
        self.host = host
        self.spec = spec

    # -- the container ---------------------------------------------------------------------

    def _host(self, command: str, what: str, *, timeout_s: float = 120) -> str:
        result = self.host.run(command, timeout_s=timeout_s)
        if not result.ok:
            raise ContainerError(f"{what} (exit {result.exit_code}):\n{result.tail}")
        return result.tail

    def _engine(self, *args: str) -> str:
        return shlex.join([self.spec.engine, *args])

    def current_hash(self) -> str | None:
        """The hash label of the node's running container; None when there is none (a
        stopped one is removed: its processes and /tmp are gone, as on a fresh host)."""
        fmt = '{{.State.Running}} {{index .Config.Labels "' + LABEL_HASH + '"}}'
        result = self.host.run(self._engine("inspect", "--format", fmt, self.spec.name))
        if not result.ok:
            return None
        running, _, digest = result.tail.strip().splitlines()[-1].partition(" ")
        return digest if running == "true" else None

    def needs_create(self) -> bool:
        """Whether the container must be (re-)created: it is missing, stopped, or was made
        from something else. Checks for the engine first, and logs it in to the registry
        when the config has credentials (each time: a login expires)."""
        self._host(
            f"command -v {shlex.quote(self.spec.engine)}",
            f"{self.spec.engine} is not installed on the node: install it "
            "(initialization_commands run on the host before the container starts)",
        )
        if self.spec.login is not None:
            self.login(self.spec.login)
        return self.current_hash() != self.spec.digest

    def login(self, login: RegistryLogin) -> None:
        """Log the host's engine in: the password goes to the host as a file only its user
        can read, is read on the engine's stdin and removed, whatever the login did."""
        if not Path(login.password_file).is_file():
            raise ContainerError(
                f"rayctl.registry_login.password_file: {login.password_file} is not a file: "
                "write the registry's password or token there"
            )
        staged = posixpath.join(self._staging().removeprefix("~/"), "password")
        try:
            put_private(self.host, {login.password_file: staged})
            self._host(
                login_command(self.spec.engine, login, f"~/{staged}"),
                f"cannot log in to {login.server} as {login.username}: check "
                "rayctl.registry_login (the password file, the user, the server)",
            )
        finally:
            self.host.run(f"rm -rf {shell_path('~/' + posixpath.dirname(staged))}")

    def create(self) -> None:
        """(Re-)create the container: pull its image as the config says, remove any old one,
        then start it with the host's detected shm size and GPU runtime."""
        pulled = self._ensure_image()
        self.remove(remove_image=False, remove_mounts=False, logout=False)
        host_home = self._host('printf "%s\\n" "$HOME"', "cannot read the host's HOME").strip()
        container_home = host_home if self.spec.share_host else self._image_home()
        detected = self._detect()
        command = run_command(
            self.spec,
            host_home=host_home,
            container_home=container_home,
            detected=[*detected, "--label", f"{LABEL_PULLED}={int(pulled)}"],
        )
        self._host(command, f"the container {self.spec.name} did not start")

    def _ensure_image(self) -> bool:
        """Pull the image (always with pull_before_run, else only if missing); whether
        rayctl pulled it onto a host that did not have it."""
        had = self.host.run(self._engine("image", "inspect", self.spec.image)).ok
        if had and not self.spec.pull:
            return False
        self._host(
            self._engine("pull", self.spec.image),
            f"cannot pull {self.spec.image}: check the image name and the registry's "
            "credentials, or build the image on the host and set pull_before_run: false",
            timeout_s=PULL_TIMEOUT_S,
        )
        return not had

    def _image_home(self) -> str:
        env = self._host(
            self._engine("image", "inspect", "--format", "{{json .Config.Env}}", self.spec.image),
            f"cannot inspect {self.spec.image}",
        )
        for item in json.loads(env.strip().splitlines()[-1] or "[]") or []:
            if item.startswith("HOME="):
                return item.removeprefix("HOME=")
        return "/root"

    def _detect(self) -> list[str]:
        found: list[str] = []
        options = self.spec.run_options
        if self.spec.detect_shm and not _has_option(options, "--shm-size"):
            kb = self._host(
                "awk '/^MemAvailable:/ {print $2}' /proc/meminfo", "cannot read the host's memory"
            )
            found.append(f"--shm-size={shm_size_bytes(int(kb.split()[-1]))}b")
        if self.spec.detect_gpu and not _has_option(options, "--runtime", "--gpus"):
            probe = f"{self._engine('info')} 2>/dev/null | grep -qi nvidia && nvidia-smi"
            if self.host.run(probe + " >/dev/null 2>&1").ok:
                found.append("--runtime=nvidia")
        return found

    def remove(
        self, *, remove_image: bool = True, remove_mounts: bool = True, logout: bool = True
    ) -> None:
        """Remove the container (its processes end), and the image when rayctl pulled it,
        the host's file-mount copies and the engine's registry login. Idempotent."""
        name = self.spec.name
        made_with = self._labels()
        if logout:  # first: a head's own autoscaler that removes its container ends with it
            self.logout(made_with.get(LABEL_REGISTRY))
        self._host(
            f"{self._engine('rm', '-f', '-t', str(STOP_TIMEOUT_S), name)} >/dev/null 2>&1 || "
            f"! {self._engine('inspect', name)} >/dev/null 2>&1",
            f"cannot remove the container {name}",
        )
        if remove_image and made_with.get(LABEL_PULLED) == "1":
            # Another container may still use it (refused then); the last one removes it.
            self.host.run(self._engine("rmi", self.spec.image))
        if remove_mounts and self.spec.mounts:
            dirs = {posixpath.dirname(staged) for staged, _ in self.spec.mounts}
            self._host(
                "rm -rf " + " ".join(shell_path(d) for d in sorted(dirs)),
                "cannot remove the file mounts' copies",
            )
        # rayctl's directories on the host, if no other container's files are left in them.
        self.host.run(
            "rmdir ~/.rayctl/docker/mounts ~/.rayctl/docker/staging ~/.rayctl/docker 2>/dev/null"
        )

    def _labels(self) -> dict[str, str]:
        """The labels of the node's container; empty when there is none."""
        fmt = "{{json .Config.Labels}}"
        found = self.host.run(
            f"{self._engine('inspect', '--format', fmt, self.spec.name)} 2>/dev/null"
        )
        return (json.loads(found.tail.strip() or "null") or {}) if found.ok else {}

    def logout(self, logged_in: str | None = None) -> None:
        """Log the host's engine out of the config's registry and `logged_in` (the one the
        container was made with, if the config changed since), so that no credentials stay on
        the host; but not while another container there carries the login (nodes sharing a
        host: the last one out logs out)."""
        servers = {self.spec.login.server} if self.spec.login else set()
        if logged_in:
            servers.add(logged_in)
        for server in sorted(servers):
            users = self.host.run(
                self._engine("ps", "-a", "--filter", f"label={LABEL_REGISTRY}={server}")
                + " --format '{{.Names}}' 2>/dev/null"
            )
            if users.ok and set(users.tail.split()) <= {self.spec.name}:
                # An engine that is not logged in refuses (podman) or says so (docker).
                self.host.run(f"{self._engine('logout', server)} >/dev/null 2>&1")

    # -- CommandRunner ---------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        stream: Callable[[str], None] | None = None,
    ) -> CommandResult:
        return self.host.run(
            exec_command(self.spec, command, env=env), timeout_s=timeout_s, stream=stream
        )

    def _staging(self) -> str:
        return f"~/.rayctl/docker/staging/{secrets.token_hex(6)}"

    def _copy_in(self, staged: str, remote: str, *, contents: bool) -> None:
        """Copy `staged` (on the host) to `remote` in the container, then drop the copy."""
        home = self.run('printf "%s\\n" "$HOME"')
        if not home.ok:
            raise TransferError(f"cannot reach the container {self.spec.name}:\n{home.tail}")
        target = _expand(remote, home.tail.strip().splitlines()[-1])
        parent = target if contents else posixpath.dirname(target)
        made = self.run(f"mkdir -p {shlex.quote(parent)}")
        if not made.ok:
            raise TransferError(f"cannot make {parent} in the container:\n{made.tail}")
        source = shell_path(staged) + ("/." if contents else "")
        copy = self.host.run(
            f"{self.spec.engine} cp {source} {shlex.quote(f'{self.spec.name}:{target}')}; "
            f"code=$?; rm -rf {shell_path(staged)}; exit $code"
        )
        if not copy.ok:
            raise TransferError(f"cannot copy into the container:\n{copy.tail}")

    def put(self, local: str, remote: str) -> None:
        staged = self._staging()
        self.host.put(local, staged)
        self._copy_in(staged, remote, contents=Path(local).is_dir())

    def sync(
        self,
        local_dir: str,
        remote_dir: str,
        exclude: Sequence[str] = (),
        filters: Sequence[str] = (),
    ) -> None:
        staged = self._staging()
        self.host.sync(local_dir, staged, exclude, filters)
        self._copy_in(staged, remote_dir, contents=True)

    def get(self, remote: str, local: str) -> None:
        staged = self._staging()
        copy = self.host.run(
            f"mkdir -p {shell_path(staged)} && {self.spec.engine} cp "
            f"{shlex.quote(f'{self.spec.name}:{remote}')} {shell_path(staged)}/"
        )
        if not copy.ok:
            raise TransferError(f"cannot copy {remote} out of the container:\n{copy.tail}")
        try:
            self.host.get(f"{staged}/{posixpath.basename(remote.rstrip('/'))}", local)
        finally:
            self.host.run(f"rm -rf {shell_path(staged)}")

    def interactive(
        self, command: str | None, *, env: Mapping[str, str] | None = None, terminal: bool = True
    ) -> int:
        # A terminal in the container only when this process has one to give it.
        wrapped = exec_command(
            self.spec,
            command or "",
            env=env,
            interactive=command is None,
            terminal=terminal and sys.stdin.isatty(),
        )
        return self.host.interactive(wrapped, terminal=terminal)
