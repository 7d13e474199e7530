"""A real container engine for docker-mode tests: rootful podman with a configuration and a
storage root the tests own (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), so nothing of this
machine's own containers is touched and cleanup is exact.

No registry is reachable here: the test image is imported from a tiny root filesystem (bash
and Python come from this machine's /usr, which a node on this machine sees read-only)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.cloud_backing import Seen
from tests.sshhosts import SSHHost

# Ray's object store and runc's limits: runc cannot raise a limit above this process's
# (no CAP_SYS_RESOURCE in many CI containers), and podman's defaults ask for more.
NPROC_CAP = 32768


def missing() -> list[str]:
    found = []
    if os.geteuid() != 0:
        found.append("root (rootful podman)")
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            found.append(f"{tool} (scripts/test.sh installs it)")
    return found


def require_podman() -> None:
    """Skip without podman or root, but fail in CI, which has both (scripts/test.sh)."""
    absent = missing()
    if absent:
        reason = "docker-mode tests need " + "; ".join(absent)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _limits() -> list[str]:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = NPROC_CAP if nproc == resource.RLIM_INFINITY else min(nproc, NPROC_CAP)
    nofile = 65536 if nofile == resource.RLIM_INFINITY else min(nofile, 65536)
    return [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]


def _rootfs_tar() -> bytes:
    """An image's root: the usual top directories, /bin and /lib as links into /usr (which
    the container gets from this machine), a root user."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, mode in (("tmp", 0o1777), ("root", 0o700), ("etc", 0o755), ("usr", 0o755)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for name in ("bin", "lib", "lib64", "sbin"):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{name}"
            tar.addfile(info)
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Podman:
    """The tests' podman: `run` a podman command, `image` the test image. `enter` is the
    command that runs it inside a test host (tests/sshhosts.py; empty: on this machine)."""

    def __init__(self, root: Path, enter: Sequence[str] = ()) -> None:
        self.root = root
        self.enter = list(enter)
        self.image = f"localhost/rayctl-test:{uuid.uuid4().hex[:8]}"
        self.env = {
            "CONTAINERS_CONF": str(root / "etc" / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(root / "etc" / "storage.conf"),
        }

    def run(self, *args: str, input: bytes | None = None) -> str:
        done = subprocess.run(
            [*self.enter, "podman", *args],
            input=input,
            capture_output=True,
            env={**os.environ, **self.env},
            timeout=120,
            check=True,
        )
        return done.stdout.decode()

    def entered(self, host: SSHHost) -> Podman:
        """This engine as run inside `host`: in its mounts and PIDs (podman records its
        processes' PIDs as the host sees them, so only there may it check or stop them)."""
        engine = Podman(self.root, ["nsenter", "-t", str(host.init_pid), "-m", "-p", "-n", "--"])
        engine.image = self.image
        return engine

    def configure(self) -> None:
        # runc, not crun (crun refuses this machine's hybrid cgroups); limits runc can set.
        # Its own temporary directory: podman resets containers it finds there without its
        # marker file (as after a reboot), so two engines never share one.
        (self.root / "etc").mkdir()
        (self.root / "etc" / "containers.conf").write_text(
            f"[containers]\ndefault_ulimits = {json.dumps(_limits())}\n"
            f'[engine]\nruntime = "runc"\ntmp_dir = "{self.root}/tmp"\n'
        )
        (self.root / "etc" / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{self.root}/storage"\n'
            f'runroot = "{self.root}/run"\n'
        )

    def setup(self) -> None:
        self.configure()
        self.run(
            "import",
            "--change",
            "ENV HOME=/root",
            "--change",
            "ENV PATH=/usr/local/bin:/usr/bin:/bin",
            "-",
            self.image,
            input=_rootfs_tar(),
        )

    def containers(self, label: str) -> list[str]:
        """Names of the containers (running or not) carrying `label` (KEY=VALUE)."""
        out = self.run("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}")
        return out.split()

    def images(self) -> list[str]:
        out = self.run("images", "--format", "{{.Repository}}:{{.Tag}}")
        return out.split()

    def logins(self) -> dict[str, object]:
        """The registries a test host's engine is logged in to (its auth file, which the host
        keeps in its own /run/containers: host_binds)."""
        auth = self.root / "auth" / "0" / "auth.json"
        return json.loads(auth.read_text())["auths"] if auth.exists() else {}

    def teardown(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("rm", "-a", "-f", "-t", "0")
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("rmi", "-a", "-f")
        # The storage root's overlay mounts (where podman ran), deepest first, then the root.
        table = subprocess.run(
            [*self.enter, "cat", "/proc/self/mounts"], capture_output=True, text=True, check=False
        )
        mounts = [line.split()[1] for line in table.stdout.splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.root))), reverse=True):
            subprocess.run([*self.enter, "umount", "-l", mount], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def podman_engine(root: Path) -> Iterator[Podman]:
    engine = Podman(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        engine.setup()
        yield engine
    finally:
        engine.teardown()


def host_binds(engine: Podman, registries_conf: Path | None = None) -> dict[str, Path]:
    """What a test host binds over its own paths (SSHHost.binds) so that every podman there
    (an SSH session's too, which no environment variable reaches) uses `engine`: its
    configuration over /etc/containers (with `registries_conf`, if given), and its logins
    kept in the host's own /run/containers (`auth`). After engine.configure()."""
    shutil.copy("/etc/containers/policy.json", engine.root / "etc")
    if registries_conf is not None:
        shutil.copy(registries_conf, engine.root / "etc" / "registries.conf")
    (engine.root / "auth").mkdir()
    return {"/etc/containers": engine.root / "etc", "/run/containers": engine.root / "auth"}


@contextlib.contextmanager
def host_engine(host: SSHHost, registries_conf: Path | None = None) -> Iterator[Podman]:
    """The tests' podman on a running test host, with its own storage and the test image,
    bound in the host's own mount namespace (host_binds)."""
    engine = Podman(host.dir / "podman").entered(host)
    engine.root.mkdir()
    try:
        engine.setup()
        for shared, private in host_binds(engine, registries_conf).items():
            subprocess.run([*engine.enter, "mount", "--bind", str(private), shared],
                           check=True, capture_output=True)  # fmt: skip
        yield engine
    finally:
        engine.teardown()
        for shared in ("/etc/containers", "/run/containers"):
            subprocess.run([*engine.enter, "umount", shared], check=False, capture_output=True)


class InstanceEngines:
    """The tests' podman on every host of a cloud's instances (tests/cloud_backing.py), each
    configured before its host's sshd starts (`binds_for`, InstanceHosts' hook). Each engine's
    storage lives on in `root` after its host is gone, so a test sees what was left there;
    `remove` removes it all (after the hosts: their mounts went with them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registries_conf: Path | None = None
        self.engines: dict[str, Podman] = {}  # instance id -> its engine, run from here

    def binds_for(self, instance: Seen) -> dict[str, Path]:
        engine = Podman(self.root / instance.id)
        engine.root.mkdir(parents=True)
        engine.configure()
        self.engines[instance.id] = engine
        return host_binds(engine, self.registries_conf)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def programs_in(cgroup: str) -> set[str]:
    """Names of the programs running in cgroups named `cgroup` (whichever PID namespace)."""
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and cgroup in (entry / "cgroup").read_text():
                found.add(Path((entry / "cmdline").read_bytes().split(b"\0")[0].decode()).name)
    return found
