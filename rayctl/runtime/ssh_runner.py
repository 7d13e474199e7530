"""SSHRunner: the CommandRunner for nodes reached over SSH (paramiko, plus rsync when it can).

One SSH connection per node, opened on first use and shared by every command and transfer
(each command is its own session channel). Host keys are trusted on first use and pinned per
cluster in an OpenSSH known_hosts file under the node id, so OpenSSH (rsync's transport) and
paramiko check the very same pins.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import posixpath
import re
import select
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
from filelock import FileLock

from rayctl.errors import AuthError, UnprotectedKey
from rayctl.runtime.runner import (
    TAIL_LINES,
    CommandResult,
    NodeUnreachable,
    TransferError,
    TunnelRefused,
)
from rayctl.runtime.sync_rules import SyncRules

KEEPALIVE_S = 15
KILL_AFTER_S = 5  # a timed-out command gets TERM, then KILL this much later
MAX_SESSIONS = 8  # below sshd's default MaxSessions (10) channels on one connection
# Tried in ~/.ssh when no key is configured (after the agent's keys), as OpenSSH does.
DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class HostKeyChanged(AuthError):
    """A known node offered a different host key than the one pinned for it: never connect."""


class _NetworkFailure(Exception):
    """A failed connection attempt worth retrying; the message is the cause."""


@dataclass(frozen=True)
class KnownKey:
    line: int  # 1-based line number in the known_hosts file
    keytype: str
    blob: bytes


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class KnownHosts:
    """A per-cluster known_hosts file whose host names are node ids (OpenSSH's HostKeyAlias)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(f"{path}.lock", mode=0o600)

    def keys(self, node_id: str) -> list[KnownKey]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        found = []
        for number, line in enumerate(text.splitlines(), start=1):
            # markers (@revoked, @cert-authority) and hashed names are not ours: skip them
            if node_id in _pinned_names(line):
                fields = line.split()
                with contextlib.suppress(ValueError):
                    found.append(KnownKey(number, fields[1], base64.b64decode(fields[2])))
        return found

    def check(self, node_id: str, key: paramiko.PKey, where: str) -> None:
        """Accept the key pinned for `node_id`, pin it on first sight, refuse any other."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock:
            known = self.keys(node_id)
            if any(k.blob == key.asbytes() for k in known):
                return
            if known:
                old = known[0]
                raise HostKeyChanged(
                    f"host key of node {node_id} ({where}) has changed: pinned "
                    f"{old.keytype} {fingerprint(old.blob)} ({self.path} line {old.line}), "
                    f"offered {key.get_name()} {key.fingerprint}. Not connecting: this could "
                    f"be someone impersonating the node. If the host was legitimately "
                    f"reinstalled, delete line {old.line} of {self.path} "
                    f"(ssh-keygen -R {node_id} -f {self.path}) and retry."
                )
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(f"{node_id} {key.get_name()} {key.get_base64()}\n")


def check_key_mode(path: Path) -> None:
    """Refuse a private key of ours that group or others may read, as OpenSSH does
    ("UNPROTECTED PRIVATE KEY FILE"). A missing key is left to the caller to report."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == os.getuid() and mode & 0o077:
        raise UnprotectedKey(
            f"the private key {path} is readable by others (mode {mode:o}), so ssh would "
            f"refuse it and so does rayctl: run `chmod 600 {path}`"
        )


def merge_known_hosts(ours: str, theirs: str) -> str:
    """Pins of two known_hosts files, by host: ours for every host we pinned, theirs for
    the others (e.g. workers a head's monitor pinned, which this machine never saw). Never
    both for one host: two pins would let either key in, and a changed key must still be
    refused."""
    ours_lines = [line for line in ours.splitlines() if line.strip()]
    known = set().union(*map(_pinned_names, ours_lines))
    kept = [
        line for line in theirs.splitlines() if (names := _pinned_names(line)) and not names & known
    ]
    return "".join(f"{line}\n" for line in [*ours_lines, *dict.fromkeys(kept)])


def _pinned_names(line: str) -> set[str]:
    fields = line.split()
    if len(fields) < 3 or fields[0].startswith(("#", "@", "|")):
        return set()
    return set(fields[0].split(","))


def _cause(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, OSError) and exc.errno == errno.EHOSTUNREACH:
        return "no route to host"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _remote_path(remote: str) -> str:
    """SFTP and rsync start in the login user's home: `~/x` is then just `x`."""
    if remote == "~":
        return "."
    return (remote[2:] or ".") if remote.startswith("~/") else remote


def _rsync_quote(arg: str) -> str:
    # rsync splits its -e command itself: single quotes group, a doubled one is a literal quote
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "''") + "'"


def _read_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise AuthError(f"ssh key file {path} does not exist") from None
    except PermissionError:
        raise AuthError(f"ssh key file {path} is not readable by this user") from None
    except TypeError:  # cryptography: "Password was not given but key is encrypted"
        raise AuthError(
            f"ssh key file {path} is encrypted: rayctl needs a key without a passphrase"
        ) from None
    except (ValueError, paramiko.SSHException, OSError) as exc:
        raise AuthError(
            f"ssh key file {path} is not a private key rayctl can use "
            f"(ed25519, ecdsa or rsa): {type(exc).__name__}"
        ) from None


class SSHRunner:
    """Runs commands on `address` as `user`, authenticating with the key file only (no key
    file: the ssh agent's keys, then ~/.ssh's default ones)."""

    def __init__(
        self,
        address: str,
        *,
        node_id: str,
        user: str,
        key_path: Path | None,
        known_hosts: Path,
        port: int = 22,
        proxy_command: str | None = None,
        connect_timeout_s: float = 10,
        connect_attempts_s: float = 60,
        env: Mapping[str, str] | None = None,
        use_rsync: bool | None = None,  # None: when both ends have it; False: always SFTP
    ) -> None:
        self.address = address
        self.node_id = node_id
        self.user = user
        self.key_path = Path(key_path) if key_path is not None else None
        self.known_hosts = Path(known_hosts)
        self._host_keys = KnownHosts(self.known_hosts)
        self.port = port
        self.proxy_command = proxy_command
        self.connect_timeout_s = connect_timeout_s
        self.connect_attempts_s = connect_attempts_s
        self.use_rsync = use_rsync
        self._env = dict(env or {})
        self._lock = threading.Lock()
        self._sessions = threading.BoundedSemaphore(MAX_SESSIONS)
        self._transport: paramiko.Transport | None = None
        self._pkeys: list[paramiko.PKey] | None = None
        self._agent: paramiko.Agent | None = None
        self._remote_rsync: bool | None = None
        self.connections_opened = 0

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}" + (" via ProxyCommand" if self.proxy_command else "")

    # -- connection -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            if self._agent is not None:
                self._agent.close()
                self._agent = None
                self._pkeys = None  # agent keys sign through the agent's connection

    def __enter__(self) -> SSHRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _load_keys(self) -> list[paramiko.PKey]:
        """The configured key, or (none configured) the ssh agent's keys and ~/.ssh's
        default ones, in the order OpenSSH tries them."""
        if self._pkeys is None:
            if self.key_path is not None:
                check_key_mode(self.key_path)
                self._pkeys = [_read_key(self.key_path)]
            else:
                self._agent = self._agent or paramiko.Agent()
                found: list[paramiko.PKey] = list(self._agent.get_keys())
                for name in DEFAULT_KEYS:
                    path = Path.home() / ".ssh" / name
                    if path.is_file():
                        with contextlib.suppress(AuthError):  # as ssh: skip unusable ones
                            found.append(_read_key(path))
                if not found:
                    raise AuthError(
                        f"node {self.node_id}: no ssh key to log in with: auth.ssh_private_key "
                        f"is not set, the ssh agent has no keys and ~/.ssh has none of "
                        f"{', '.join(DEFAULT_KEYS)}"
                    )
                self._pkeys = found
        return self._pkeys

    def _connected(self) -> paramiko.Transport:
        with self._lock:
            if self._transport is not None and self._transport.is_active():
                return self._transport
            if self._transport is not None:
                self._transport.close()
            self._transport = self._connect()
            self.connections_opened += 1
            return self._transport

    def _discard(self, transport: paramiko.Transport) -> None:
        with self._lock:
            transport.close()
            if self._transport is transport:
                self._transport = None

    def _connect(self) -> paramiko.Transport:
        pkeys = self._load_keys()  # a bad key file is not worth retrying
        started = time.monotonic()
        delay, attempts = 0.5, 0
        while True:
            attempts += 1
            try:
                return self._handshake(pkeys)
            except _NetworkFailure as exc:
                cause = str(exc)
            left = started + self.connect_attempts_s - time.monotonic()
            if left <= 0:
                took = time.monotonic() - started
                raise NodeUnreachable(
                    f"cannot reach node {self.node_id} ({self.where}): {cause} "
                    f"after {attempts} attempt{'s' * (attempts > 1)} in {took:.0f} s"
                )
            time.sleep(min(delay, left))
            delay = min(delay * 2, 5)

    def _open_socket(self) -> socket.socket | paramiko.ProxyCommand:
        if self.proxy_command:
            # like OpenSSH: %h/%p/%r substituted, run by the shell
            subst = {"h": self.address, "p": str(self.port), "r": self.user, "%": "%"}
            command = re.sub(r"%([hpr%])", lambda m: subst[m.group(1)], self.proxy_command)
            try:
                return paramiko.ProxyCommand(shlex.join(["/bin/sh", "-c", f"exec {command}"]))
            except OSError as exc:
                raise _NetworkFailure(f"proxy command failed to start: {_cause(exc)}") from None
        try:
            sock = socket.create_connection((self.address, self.port), self.connect_timeout_s)
        except OSError as exc:
            raise _NetworkFailure(_cause(exc)) from None
        try:
            self._await_banner(sock)
        except BaseException:
            sock.close()
            raise
        # paramiko's keepalive is fire-and-forget and never notices a vanished peer; the
        # kernel does, once sent data stays unacknowledged for TCP_USER_TIMEOUT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", KEEPALIVE_S), ("TCP_KEEPINTVL", 5),
                            ("TCP_KEEPCNT", 4), ("TCP_USER_TIMEOUT", 60_000)):  # fmt: skip
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        return sock

    def _await_banner(self, sock: socket.socket) -> None:
        """Peek (so paramiko still reads it) for the server's "SSH-" line: a port that accepts
        but does not speak SSH yet (booting, or not sshd) is not ready."""
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _NetworkFailure(f"no SSH banner within {self.connect_timeout_s:g} s")
            sock.settimeout(left)
            try:
                data = sock.recv(256, socket.MSG_PEEK)
            except TimeoutError:
                continue
            except OSError as exc:
                raise _NetworkFailure(_cause(exc)) from None
            if not data:
                raise _NetworkFailure("connection closed before the SSH banner")
            if b"SSH-" in data:
                return
            if len(data) >= 256:
                raise _NetworkFailure("the port does not speak SSH")
            time.sleep(0.05)  # only part of a (pre-)banner line has arrived

    def _handshake(self, pkeys: Sequence[paramiko.PKey]) -> paramiko.Transport:
        transport = paramiko.Transport(self._open_socket())
        try:
            transport.banner_timeout = self.connect_timeout_s
            self._prefer_pinned_key_types(transport)
            try:
                transport.start_client(timeout=self.connect_timeout_s)
            except paramiko.IncompatiblePeer as exc:
                raise NodeUnreachable(f"node {self.node_id} ({self.where}): {exc}") from None
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise _NetworkFailure(_cause(exc)) from None
            self._host_keys.check(self.node_id, transport.get_remote_server_key(), self.where)
            for pkey in pkeys:
                try:
                    remaining = transport.auth_publickey(self.user, pkey)
                except paramiko.AuthenticationException:
                    continue  # the next key, as ssh does
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise _NetworkFailure(_cause(exc)) from None
                if not remaining and transport.is_authenticated():
                    break
            else:
                keys = (
                    f"the key {self.key_path}"
                    if self.key_path
                    else f"any of the ssh agent's or ~/.ssh's {len(pkeys)} key(s)"
                )
                raise AuthError(
                    f"node {self.node_id}: {self.user}@{self.where} did not accept {keys}. "
                    f"Check that its public key is in the host's "
                    f"~{self.user}/.ssh/authorized_keys and that ssh_user ({self.user}) is right."
                )
            transport.set_keepalive(KEEPALIVE_S)
            return transport
        except BaseException:
            transport.close()
            raise

    def _prefer_pinned_key_types(self, transport: paramiko.Transport) -> None:
        # Like OpenSSH: ask for the key type we pinned, or a server with several host keys
        # might show another one of its (legitimate) keys and look "changed".
        pinned: list[str] = []
        for known in self._host_keys.keys(self.node_id):
            rsa = known.keytype == "ssh-rsa"
            pinned += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if rsa else [known.keytype]
        if pinned:
            options = transport.get_security_options()
            offered = list(options.key_types)
            first = [t for t in pinned if t in offered]
            options.key_types = first + [t for t in offered if t not in first]

    @contextlib.contextmanager
    def _channel(self) -> Iterator[paramiko.Channel]:
        """A new session channel; reconnects once if the connection died since last use."""
        with self._sessions:
            for attempt in (1, 2):
                transport = self._connected()
                try:
                    channel = transport.open_session(timeout=self.connect_timeout_s)
                    break
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    self._discard(transport)
                    if attempt == 2:
                        raise self._lost(exc) from None
            try:
                yield channel
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if transport.is_active():  # not the connection: e.g. a failing stream callback
                    raise
                raise self._lost(exc) from None
            finally:
                channel.close()

    def open_tunnel(self, host: str, port: int) -> paramiko.Channel:
        """A TCP connection made by the node to `host:port` (as `ssh -L` makes), carried by
        this runner's connection; TunnelRefused when nothing there accepts it."""
        for attempt in (1, 2):
            transport = self._connected()
            try:
                return transport.open_channel(
                    "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=self.connect_timeout_s
                )
            except paramiko.ChannelException as exc:  # sshd could not connect there
                raise TunnelRefused(
                    f"node {self.node_id} could not connect to {host}:{port}: {exc.text}"
                ) from None
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._discard(transport)
                if attempt == 2:
                    raise self._lost(exc) from None

    def _lost(self, exc: BaseException) -> NodeUnreachable:
        return NodeUnreachable(
            f"lost the connection to node {self.node_id} ({self.where}): {_cause(exc)}"
        )

    def _check_status(self, channel: paramiko.Channel) -> int:
        code = channel.recv_exit_status()
        if code == -1 and not channel.get_transport().is_active():
            raise self._lost(EOFError("connection closed"))
        return code

    # -- commands ---------------------------------------------------------------------------

    def _script(self, inner: str, env: Mapping[str, str] | None) -> str:
        """`inner` run by bash with the env exported (sshd refuses most SendEnv); wrapped in
        `bash -c` so the login shell may be any shell, and not exec'd last so that a command
        killed by a signal still yields an exit status (paramiko ignores exit-signal)."""
        exports = []
        for name, value in {**self._env, **(env or {})}.items():
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"not a valid environment variable name: {name!r}")
            exports.append(f"export {name}={shlex.quote(value)}; ")
        return "exec bash -c " + shlex.quote("".join(exports) + inner + "; exit $?")

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        stream: Callable[[str], None] | None = None,
    ) -> CommandResult:
        inner = f"bash -c {shlex.quote(command)}"
        if timeout_s:  # killed on the node itself: closing our channel would not stop it
            inner = f"timeout --kill-after={KILL_AFTER_S} {timeout_s:g} {inner}"
        script = self._script(inner, env)
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        started = time.monotonic()
        # if the node's `timeout` is missing or stuck, stop waiting ourselves
        give_up = started + timeout_s + KILL_AFTER_S + 10 if timeout_s else None

        def emit(line: str) -> None:
            line = line.rstrip("\r")
            tail.append(line)
            if stream:
                stream(line)

        with self._channel() as channel:
            channel.set_combine_stderr(True)
            channel.exec_command(script)
            channel.shutdown_write()  # stdin at EOF, like LocalRunner's DEVNULL
            channel.settimeout(1.0)
            pending = b""
            while True:
                try:
                    data = channel.recv(65536)
                except TimeoutError:
                    if give_up and time.monotonic() > give_up:
                        break
                    continue
                if not data:
                    break
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    emit(line.decode(errors="replace"))
            if pending:
                emit(pending.decode(errors="replace"))
            if give_up and time.monotonic() > give_up:
                code = 124
            else:
                channel.settimeout(None)
                code = self._check_status(channel)
        # `timeout` exits 124 after TERM, 137 if it needed KILL
        if timeout_s and code in (124, 137) and time.monotonic() - started >= timeout_s:
            tail.append(f"(timed out after {timeout_s:g} s)")
            code = 124
        return CommandResult(code, "\n".join(tail))

    def interactive(
        self, command: str | None, *, env: Mapping[str, str] | None = None, terminal: bool = True
    ) -> int:
        try:
            stdin_fd: int | None = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):  # closed, or replaced (pytest capture)
            stdin_fd = None
        is_tty = terminal and stdin_fd is not None and os.isatty(stdin_fd)
        inner = "bash -l" if command is None else f"bash -c {shlex.quote(command)}"
        with self._channel() as channel:
            if is_tty:  # like `ssh`: a remote terminal only when there is a local one
                assert stdin_fd is not None
                columns, rows = os.get_terminal_size(stdin_fd)
                channel.get_pty(os.environ.get("TERM", "vt100"), columns, rows)
            channel.exec_command(self._script(inner, env))
            with self._raw_terminal(stdin_fd if is_tty else None, channel):
                self._shuttle(channel, stdin_fd)
            return self._check_status(channel)

    @contextlib.contextmanager
    def _raw_terminal(self, fd: int | None, channel: paramiko.Channel) -> Iterator[None]:
        if fd is None:
            yield
            return
        saved = termios.tcgetattr(fd)
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:  # signal handlers can only be set from the main thread
            previous = signal.signal(
                signal.SIGWINCH, lambda *_: channel.resize_pty(*os.get_terminal_size(fd))
            )
        tty.setraw(fd, termios.TCSANOW)  # TCSANOW: keep what was typed ahead
        try:
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            if on_main:
                signal.signal(signal.SIGWINCH, previous)

    @staticmethod
    def _shuttle(channel: paramiko.Channel, stdin_fd: int | None) -> None:
        def write(out: object, data: bytes) -> None:
            buffer = getattr(out, "buffer", None)
            if buffer is not None:
                buffer.write(data)
            else:
                out.write(data.decode(errors="replace"))  # type: ignore[attr-defined]
            out.flush()  # type: ignore[attr-defined]

        reading = stdin_fd is not None
        if not reading:
            channel.shutdown_write()
        while True:
            watched: list[object] = [channel, stdin_fd] if reading else [channel]
            ready, _, _ = select.select(watched, [], [], 0.5)
            if channel.recv_ready():
                write(sys.stdout, channel.recv(65536))
            if channel.recv_stderr_ready():
                write(sys.stderr, channel.recv_stderr(65536))
            if reading and stdin_fd in ready:
                assert stdin_fd is not None
                try:
                    data = os.read(stdin_fd, 4096)
                except OSError:  # EIO: the terminal went away
                    data = b""
                if data:
                    channel.sendall(data)
                else:
                    reading = False
                    channel.shutdown_write()
            done = channel.exit_status_ready() or channel.eof_received
            if done and not channel.recv_ready() and not channel.recv_stderr_ready():
                return

    # -- files ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _sftp(self) -> Iterator[paramiko.SFTPClient]:
        with self._channel() as channel:
            channel.invoke_subsystem("sftp")
            sftp = paramiko.SFTPClient(channel)
            try:
                yield sftp
            except OSError as exc:
                if not channel.get_transport().is_active():
                    raise self._lost(exc) from None
                raise TransferError(f"copying to node {self.node_id} failed: {exc}") from None
            finally:
                sftp.close()

    @staticmethod
    def _sftp_makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix in ("", "."):
                continue
            try:
                sftp.stat(prefix)
            except FileNotFoundError:
                sftp.mkdir(prefix)

    @staticmethod
    def _sftp_copy(sftp: paramiko.SFTPClient, local: Path, remote: str) -> None:
        """One entry: a symlink stays a symlink (like rsync -a); modes and mtimes kept."""
        info = local.lstat()
        if stat.S_ISLNK(info.st_mode):
            with contextlib.suppress(OSError):
                sftp.remove(remote)
            sftp.symlink(os.readlink(local), remote)
            return
        if stat.S_ISDIR(info.st_mode):
            try:
                sftp.stat(remote)
            except FileNotFoundError:
                sftp.mkdir(remote)
        else:
            sftp.put(str(local), remote)
        sftp.chmod(remote, stat.S_IMODE(info.st_mode))
        if not stat.S_ISDIR(info.st_mode):
            sftp.utime(remote, (info.st_atime, info.st_mtime))

    def put(self, local: str, remote: str) -> None:
        target = _remote_path(remote)
        with self._sftp() as sftp:
            self._sftp_makedirs(sftp, posixpath.dirname(target))
            self._sftp_copy(sftp, Path(os.path.realpath(local)), target)
            if os.path.isdir(local):
                for rel, path in SyncRules(local).walk():
                    self._sftp_copy(sftp, path, posixpath.join(target, rel))

    def sync(
        self,
        local_dir: str,
        remote_dir: str,
        exclude: Sequence[str] = (),
        filters: Sequence[str] = (),
    ) -> None:
        target = _remote_path(remote_dir)
        if self._rsync_usable():
            self._rsync(local_dir, target, exclude, filters)
            return
        with self._sftp() as sftp:
            self._sftp_makedirs(sftp, target)
            for rel, path in SyncRules(local_dir, exclude, filters).walk():
                self._sftp_copy(sftp, path, posixpath.join(target, rel))

    def get(self, remote: str, local: str) -> None:
        source = _remote_path(remote)
        quoted = shlex.quote(source)
        kind = self.run(
            f"if [ -d {quoted} ]; then echo dir; else test -e {quoted} && echo file; fi"
        )
        if not kind.ok:
            raise TransferError(f"{remote} does not exist on node {self.node_id}")
        is_dir = kind.tail.strip() == "dir"
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        if self._rsync_usable():
            suffix = "/" if is_dir else ""
            self._rsync_run([f"{self._rsync_host()}:{source}{suffix}", local + suffix], "from")
            return
        with self._sftp() as sftp:
            if not is_dir:
                sftp.get(source, local)
                return
            for directory, _dirs, files in self._sftp_walk(sftp, source):
                rel = posixpath.relpath(directory, source)
                Path(local, rel).mkdir(parents=True, exist_ok=True)
                for name in files:
                    sftp.get(posixpath.join(directory, name), str(Path(local, rel, name)))

    @staticmethod
    def _sftp_walk(
        sftp: paramiko.SFTPClient, top: str
    ) -> Iterator[tuple[str, list[str], list[str]]]:
        dirs, files = [], []
        for entry in sftp.listdir_attr(top):
            mode = entry.st_mode or 0
            (dirs if stat.S_ISDIR(mode) else files).append(entry.filename)
        yield top, dirs, files
        for name in dirs:
            yield from SSHRunner._sftp_walk(sftp, posixpath.join(top, name))

    def _rsync_usable(self) -> bool:
        if self.use_rsync is not None:
            return self.use_rsync
        if not (shutil.which("rsync") and shutil.which("ssh")):
            return False
        if self._remote_rsync is None:
            self._remote_rsync = self.run("command -v rsync").ok
        return self._remote_rsync

    def ssh_base_argv(self) -> list[str]:
        """An OpenSSH command line (without the destination) that connects exactly like this
        runner: same key, user, port, pinned host key and proxy; never prompts."""
        # With a key, that key only; without, ssh's own agent and default keys (as the runner).
        identity = (
            {"IdentitiesOnly": "yes", "IdentityAgent": "none"} if self.key_path is not None else {}
        )
        options = {
            **identity,
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "HostKeyAlias": self.node_id,
            "StrictHostKeyChecking": "yes",
            "BatchMode": "yes",
            "ConnectTimeout": str(max(1, round(self.connect_timeout_s))),
            "ServerAliveInterval": str(KEEPALIVE_S),
        }
        if self.proxy_command:
            options["ProxyCommand"] = self.proxy_command
        argv = ["ssh", "-F", "/dev/null"]
        argv += ["-i", str(self.key_path)] if self.key_path is not None else []
        argv += ["-p", str(self.port)]
        argv += ["-l", self.user]
        for name, value in options.items():
            argv += ["-o", f"{name}={value}"]
        return argv

    def _rsync(
        self, local_dir: str, target: str, exclude: Sequence[str], filters: Sequence[str]
    ) -> None:
        # also connects first, so the host key is pinned before OpenSSH checks it strictly
        made = self.run(f"mkdir -p -- {shlex.quote(target)}")
        if not made.ok:
            raise TransferError(f"cannot create {target} on node {self.node_id}:\n{made.tail}")
        args = [f"--exclude={pattern}" for pattern in exclude]
        args += [f"--filter=dir-merge,- {name}" for name in filters]
        args += [local_dir.rstrip("/") + "/", f"{self._rsync_host()}:{target}/"]
        self._rsync_run(args, "to")

    def _rsync_host(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.user}@{host}"

    def _rsync_run(self, args: list[str], direction: str) -> None:
        argv = ["rsync", "-a", "-e", " ".join(map(_rsync_quote, self.ssh_base_argv())), *args]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode == 0:
            return
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
        if proc.returncode in (255, 12, 30, 35):  # ssh failed, stream broken, or timed out
            raise NodeUnreachable(
                f"rsync {direction} node {self.node_id} ({self.where}) lost the connection:\n"
                f"{detail}"
            )
        raise TransferError(
            f"rsync {direction} node {self.node_id} failed ({proc.returncode}):\n{detail}"
        )
