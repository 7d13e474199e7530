"""Test hosts: real sshd machines made of Linux namespaces (DESIGN §6).

Each host is a network namespace on a bridge of its own subnet (10.213.K.0/24, K picked at
random per network, or a given 10.x.y prefix; the bridge is .1 in this namespace, so tests
reach the hosts), with its own PID, UTS and mount namespaces. Hosts can also be added at a
given address and removed while the network lives (a harness that backs cloud instances with
hosts boots and powers them off as the instances come and go). A host's PID 1 is a small
init that runs sshd and reaps orphans, so the host behaves like a machine: `ray stop` on one
host sees only that host's processes, and stopping the host (SIGKILL to its init) kills
everything on it, like pulling the plug.

Inside a host, and only there (private mount namespace):
  - /etc/passwd gives root the host's own home directory (its `~`, its `.rayctl`);
  - /etc/hosts names the host, as on a real machine (`ray start` without --node-ip-address
    resolves its own hostname when it has no default route, or takes 127.0.0.1);
  - /tmp/ray is the host's own directory (Ray's default temp dir is per machine);
  - /usr/local/sbin holds `ray`, this venv's, so `ray` is on the PATH as on a Ray host.
Everything else is this machine's filesystem, shared: the venv's Python works on every host,
which is how the runtime is "already installed" there. Hosts cannot reach the internet.

Every network records its owner's PID; a network whose owner died (a killed test run) is
removed by the next one. Two live networks never share a subnet: creating one whose subnet
overlaps an address or route of this machine is an error. Needs root.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STATE_ROOT = Path("/tmp/rayctl-test-hosts")
SSHD = "/usr/sbin/sshd"

# PID 1 of a host: runs sshd, reaps every orphan (Ray daemonizes), SIGUSR1 stops sshd,
# SIGUSR2 starts it again. Its exit takes every process of the host with it.
_INIT = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    argv = sys.argv[1:]
    sshd = None
    def start(*_):
        global sshd
        if sshd is None or sshd.poll() is not None:
            sshd = subprocess.Popen(argv)
    def stop(*_):
        global sshd
        if sshd is not None and sshd.poll() is None:
            sshd.kill()
            sshd.wait()
    signal.signal(signal.SIGUSR1, stop)
    signal.signal(signal.SIGUSR2, start)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    start()
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.2)
        except InterruptedError:
            pass
    """
)

_SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
UseDNS no
MaxStartups 200
MaxSessions 100
LogLevel ERROR
Subsystem sftp internal-sftp
"""


def _sh(*argv: str, check: bool = True, netns: str | None = None) -> subprocess.CompletedProcess:
    if netns:
        argv = ("ip", "netns", "exec", netns, *argv)
    return subprocess.run(argv, check=check, capture_output=True, text=True)


@dataclass
class SSHHost:
    name: str
    address: str
    dir: Path  # the host's state on this machine: keys, sshd config, home
    netns: str
    # This machine's paths bound over the host's own (target -> source) before sshd starts,
    # in the host's mount namespace only (e.g. a container engine's configuration).
    binds: dict[str, Path] = field(default_factory=dict)
    _init: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        return self.dir / "home"

    @property
    def host_key_path(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def init_pid(self) -> int:
        """The host's PID 1, as this machine sees it."""
        assert self._init is not None, f"host {self.name} is not running"
        # unshare --fork: our child is `unshare`, its only child is the namespace's PID 1.
        children = Path(f"/proc/{self._init.pid}/task/{self._init.pid}/children").read_text()
        return int(children.split()[0])

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.dir / "ray-tmp").mkdir(exist_ok=True)
        sbin = self.dir / "sbin"
        sbin.mkdir(exist_ok=True)
        ray = sbin / "ray"
        if not ray.exists():
            ray.symlink_to(Path(sys.executable).parent / "ray")
        passwd = Path("/etc/passwd").read_text().splitlines()
        (self.dir / "passwd").write_text(
            "\n".join(
                f"root:x:0:0:root:{self.home}:/bin/bash" if line.startswith("root:") else line
                for line in passwd
            )
            + "\n"
        )
        (self.dir / "hosts").write_text(f"127.0.0.1 localhost\n{self.address} {self.name}\n")
        (self.dir / "sshd_config").write_text(
            _SSHD_CONFIG.format(address=self.address, dir=self.dir)
        )
        (self.dir / "init.py").write_text(_INIT)
        mounts = (
            f"hostname {self.name} && "
            f"mount --bind {self.dir}/passwd /etc/passwd && "
            f"mount --bind {self.dir}/hosts /etc/hosts && "
            f"mount --bind {self.dir}/ray-tmp /tmp/ray && "
            f"mount --bind {sbin} /usr/local/sbin && "
            + "".join(f"mount --bind {src} {target} && " for target, src in self.binds.items())
            + f"exec /usr/bin/python3 {self.dir}/init.py {SSHD} -D -e -f {self.dir}/sshd_config"
        )
        log = open(self.dir / "init.log", "ab")  # noqa: SIM115 - the host's process owns it
        # nsenter, not `ip netns exec`: that remounts /sys without the cgroup mounts, and a
        # container engine on the host (docker-mode tests) needs them.
        self._init = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--uts", "--pid", "--fork",
             "--mount", "--mount-proc", "--propagation", "private", "sh", "-c", mounts],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.wait_for_sshd()

    def wait_for_sshd(self, timeout_s: float = 10.0) -> None:
        import socket

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((self.address, 22), 1) as s:
                s.settimeout(1)
                if s.recv(4).startswith(b"SSH-"):
                    return
            time.sleep(0.05)
        log = (self.dir / "init.log").read_text(errors="replace")
        raise RuntimeError(f"sshd on {self.name} ({self.address}) did not start:\n{log}")

    def stop_sshd(self) -> None:
        """The host stays up (its processes run on) but nobody can log in."""
        os.kill(self.init_pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while self._sshd_listening() and time.monotonic() < deadline:
            time.sleep(0.05)

    def start_sshd(self) -> None:
        os.kill(self.init_pid, signal.SIGUSR2)
        self.wait_for_sshd()

    def _sshd_listening(self) -> bool:
        import socket

        try:
            socket.create_connection((self.address, 22), 0.5).close()
            return True
        except OSError:
            return False

    def processes(self) -> dict[int, str]:
        """Every process on the host except its init and sshd: PID (as this machine sees it)
        -> command line. Zombies count (their command line is empty)."""
        return {
            pid: cmdline
            for pid, cmdline in self._all_processes().items()
            if not cmdline.startswith((SSHD, "sshd:"))  # the listener, login sessions
        }

    def kill_sessions(self) -> list[int]:
        """SIGKILL every login session's sshd but not the listener: open connections drop as
        in a network failure, new ones are accepted. What the sessions ran lives on, orphaned.
        Returns the PIDs killed."""
        pids = [
            pid
            for pid, cmd in self._all_processes().items()
            if cmd.startswith("sshd:") and "[listener]" not in cmd  # sshd retitles itself
        ]
        self.kill(pids)
        return pids

    def running(self, pid: int) -> bool:
        """Whether a PID as the host sees it (a remote shell's `$$`) runs, zombies not counted:
        read from the host's own /proc, through its init's root."""
        with contextlib.suppress(OSError, IndexError):
            stat = Path(f"/proc/{self.init_pid}/root/proc/{pid}/stat").read_text()
            return stat.rsplit(")", 1)[1].split()[0] != "Z"
        return False

    @contextlib.contextmanager
    def replaced_host_key(self) -> Iterator[None]:
        """The machine reinstalled: sshd restarts with a new host key, open connections drop.
        The old key is back afterwards: other tests have pinned it."""
        pair = [self.host_key_path, Path(f"{self.host_key_path}.pub")]
        self.stop_sshd()
        self.kill_sessions()
        for path in pair:
            os.replace(path, f"{path}.old")
        try:
            _keygen(self.host_key_path)
            self.start_sshd()
            yield
        finally:
            self.stop_sshd()
            self.kill_sessions()
            for path in pair:
                os.replace(f"{path}.old", path)
            self.start_sshd()

    def _all_processes(self) -> dict[int, str]:
        init = self.init_pid
        ns = os.readlink(f"/proc/{init}/ns/pid")
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == init:
                continue
            try:
                if os.readlink(entry / "ns/pid") != ns:
                    continue
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            found[int(entry.name)] = cmdline
        return found

    def kill(self, pids: Iterable[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Power off: SIGKILL to PID 1 kills every process of the host."""
        if self._init is None:
            return
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(self.init_pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._init.pid, signal.SIGKILL)
        self._init.wait(timeout=10)
        self._init = None


@dataclass
class HostNetwork:
    """A bridge with N hosts (at .2, .3, ...), more added and removed at given addresses with
    `add_host`/`remove_host`. Use as a context manager; everything is removed on exit.

    `prefix` ("10.210.1") picks the subnet (prefix.0/24, the bridge at prefix.1): a network
    of a subnet another test process's network holds waits for it to be removed (test files
    run side by side, and the cloud backings each have a fixed subnet); by default a free
    10.213.K.0/24 is picked at random."""

    size: int
    prefix: str | None = None
    hosts: list[SSHHost] = field(default_factory=list)
    client_key: Path = field(init=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._owned = False  # whether the bridge and state dir are this network's to remove
        self._turn: IO[str] | None = None  # a fixed subnet's lock, held while the network lives
        if self.prefix is None:
            taken = _sh("ip", "-o", "addr").stdout + _sh("ip", "route").stdout
            self.subnet: int | str = next(
                k for k in random.sample(range(1, 255), 254) if f"10.213.{k}." not in taken
            )
            self.prefix = f"10.213.{self.subnet}"
            tag = str(self.subnet)
        else:
            octets = self.prefix.split(".")
            if len(octets) != 3 or not ipaddress.ip_network(f"{self.prefix}.0/24").is_private:
                raise ValueError(f"prefix {self.prefix!r} is not the private a.b.c of a /24")
            self.subnet = self.prefix
            tag = f"{octets[1]}x{octets[2]}"  # names stay under 15 characters
        self.tag = tag
        self.bridge = f"rcbr{tag}"
        self.dir = STATE_ROOT / tag

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.prefix}.0/24")

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"

    def __enter__(self) -> HostNetwork:
        try:
            self._create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _create(self) -> None:
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        if self.subnet == self.prefix:  # a fixed subnet: wait for its turn
            self._turn = open(STATE_ROOT / f"{self.tag}.turn", "w")  # noqa: SIM115 - held
            fcntl.flock(self._turn, fcntl.LOCK_EX)
        _remove_orphaned_networks()  # after the turn: its last holder may have been killed
        # One creation at a time on this machine: the check and the bridge go together.
        with open(STATE_ROOT / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.dir.exists():
                raise RuntimeError(
                    f"a live test network already uses {self.network} ({self.dir}): "
                    "two networks cannot share a subnet"
                )
            _check_free(self.network)
            self.dir.mkdir(parents=True)
            self._owned = True
            (self.dir / "owner").write_text(str(os.getpid()))
            _sh("ip", "link", "add", self.bridge, "type", "bridge")
            _sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _sh("ip", "link", "set", self.bridge, "up")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        Path("/tmp/ray").mkdir(exist_ok=True)  # each host mounts its own over it
        self.client_key = self.dir / "id_ed25519"
        _keygen(self.client_key)
        _keygen(self.dir / "wrong_key")
        for n in range(2, 2 + self.size):
            self.hosts.append(self._add_host(n))

    def add_host(
        self, address: str, name: str | None = None, binds: Mapping[str, Path] | None = None
    ) -> SSHHost:
        """Boot a host at `address` (in this network's subnet, not the bridge's) while the
        network lives; `name` is its hostname (default host<N>); `binds` as SSHHost's."""
        ip = ipaddress.IPv4Address(address)
        if ip not in self.network or int(ip) & 0xFF in (0, 1, 255):
            raise ValueError(f"{address} is not a host address of {self.network} besides .1")
        with self._lock:
            if any(h.address == address for h in self.hosts):
                raise ValueError(f"a host already runs at {address}")
            host = self._add_host(int(ip) & 0xFF, name, binds)
            self.hosts.append(host)
            return host

    def remove_host(self, host: SSHHost) -> None:
        """Power the host off and remove its namespace and state (idempotent)."""
        with self._lock:
            if host in self.hosts:
                self.hosts.remove(host)
        self._destroy_host(host)

    def _add_host(
        self, n: int, name: str | None = None, binds: Mapping[str, Path] | None = None
    ) -> SSHHost:
        netns = veth = f"rc{self.tag}h{n}"
        host = SSHHost(
            name=name or f"host{n}",
            address=f"{self.prefix}.{n}",
            dir=self.dir / veth,
            netns=netns,
            binds=dict(binds or {}),
        )
        try:
            host.dir.mkdir()
            _keygen(host.host_key_path)
            shutil.copy(f"{self.client_key}.pub", host.dir / "authorized_keys")
            _sh("ip", "netns", "add", netns)
            _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            _sh("ip", "link", "set", veth, "master", self.bridge)
            _sh("ip", "link", "set", veth, "up")
            _sh("ip", "addr", "add", f"{host.address}/24", "dev", "eth0", netns=netns)
            _sh("ip", "link", "set", "eth0", "up", netns=netns)
            _sh("ip", "link", "set", "lo", "up", netns=netns)
            host.start()
        except BaseException:
            self._destroy_host(host)
            raise
        return host

    @staticmethod
    def _destroy_host(host: SSHHost) -> None:
        host.stop()
        # The veth pair goes with its namespace only once the kernel has torn that down, which
        # lags: deleted now, so a host booted at the same address next can take the name.
        _sh("ip", "link", "del", host.netns, check=False)
        _sh("ip", "netns", "del", host.netns, check=False)
        shutil.rmtree(host.dir, ignore_errors=True)

    @property
    def wrong_key(self) -> Path:
        return self.dir / "wrong_key"

    def remove(self) -> None:
        with self._lock:
            hosts, self.hosts = list(self.hosts), []
        for host in hosts:
            host.stop()
        if self._owned:  # never another live network's bridge of the same subnet
            _remove_network(self.dir)
            self._owned = False
        if self._turn is not None:
            self._turn.close()  # the next network of this subnet goes on
            self._turn = None


def _check_free(network: ipaddress.IPv4Network) -> None:
    """Refuse a subnet that overlaps any address or route of this machine (another live test
    network, or a real network this machine is on)."""
    for line in _sh("ip", "-o", "-4", "addr").stdout.splitlines():
        fields = line.split()
        used = ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network
        if used.overlaps(network) and not used.is_loopback:
            raise RuntimeError(
                f"cannot create a test network on {network}: it overlaps {used} on "
                f"{fields[1]} (another test network of that subnet is alive?)"
            )
    for line in _sh("ip", "-4", "route").stdout.splitlines():
        dest = line.split()[0]
        if dest == "default":
            continue
        used_net = ipaddress.IPv4Network(dest, strict=False)
        if used_net.overlaps(network):
            raise RuntimeError(f"cannot create a test network on {network}: route {line!r}")


def missing_capabilities() -> list[str]:
    """Why test hosts cannot be made here (empty when they can)."""
    return [
        why
        for why, lacking in (
            ("not root", os.geteuid() != 0),
            ("no /usr/sbin/sshd (apt-get install openssh-server)", not Path(SSHD).exists()),
            ("no `ip` (apt-get install iproute2)", shutil.which("ip") is None),
        )
        if lacking
    ]


def _keygen(path: Path) -> None:
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path))


def _remove_network(state_dir: Path) -> None:
    """Remove a network's namespaces, veths and bridge (host processes must be gone first)."""
    subnet = state_dir.name
    for netns in _sh("ip", "netns", "list").stdout.split():
        if netns.startswith(f"rc{subnet}h"):
            _sh("ip", "link", "del", netns, check=False)  # its veth pair, named as it is
            _sh("ip", "netns", "del", netns, check=False)
    _sh("ip", "link", "del", f"rcbr{subnet}", check=False)
    shutil.rmtree(state_dir, ignore_errors=True)


def _remove_orphaned_networks() -> None:
    """Networks left by a test run that was killed before it could clean up."""
    if not STATE_ROOT.is_dir():
        return
    with open(STATE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # not a network another process is creating
        for state_dir in STATE_ROOT.iterdir():
            if state_dir.is_dir():
                _remove_if_orphaned(state_dir)


def _remove_if_orphaned(state_dir: Path) -> None:
    try:
        owner = int((state_dir / "owner").read_text())
        os.kill(owner, 0)
        return  # its owner is alive
    except (OSError, ValueError):
        pass
    for init in _inits_of(state_dir):
        with contextlib.suppress(OSError):
            os.kill(init, signal.SIGKILL)
    _remove_network(state_dir)


def _inits_of(state_dir: Path) -> Iterator[int]:
    """PIDs of host inits started for this network (their command line names its dir)."""
    marker = f"{state_dir}/".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                if cmdline.startswith(b"/usr/bin/python3\0") and marker in cmdline:
                    yield int(entry.name)
