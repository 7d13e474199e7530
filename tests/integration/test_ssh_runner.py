"""SSHRunner against a real OpenSSH server (no mocks): the last host of `host_network`
(tests/sshhosts.py; the on-prem tests use the others), left as found after every test."""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rayctl.errors import AuthError, UnprotectedKey
from rayctl.runtime.runner import TAIL_LINES, LocalRunner, NodeUnreachable, TransferError
from rayctl.runtime.ssh_runner import HostKeyChanged, SSHRunner
from tests.conftest import REPO
from tests.sshhosts import HostNetwork, SSHHost

pytestmark = pytest.mark.integration

MakeRunner = Callable[..., SSHRunner]
CLOSED_PORT = 2222  # only sshd's 22 listens on a host
WORK = "~/work"  # the tests' files on the host; `SSHHost.home / "work"` here


def key_fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True)
    return out.stdout.split()[1]


@pytest.fixture
def host(host_network: HostNetwork) -> Iterator[SSHHost]:
    """The last host, with an empty ~/work; afterwards nothing a test started runs on it and
    nothing new is left in its home."""
    host = host_network.hosts[-1]
    before = set(host.home.iterdir())
    (host.home / "work").mkdir()
    yield host
    host.kill(host.processes())
    for path in set(host.home.iterdir()) - before:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@pytest.fixture
def work(host: SSHHost) -> Path:
    """~/work on the host, as this machine sees it (the filesystem is shared)."""
    return host.home / "work"


@pytest.fixture
def make_runner(host: SSHHost, host_network: HostNetwork, tmp_path: Path) -> Iterator[MakeRunner]:
    made: list[SSHRunner] = []

    def make(**overrides: object) -> SSHRunner:
        options: dict = dict(
            node_id="node-1",
            user="root",
            key_path=host_network.client_key,
            known_hosts=tmp_path / "clusters" / "c1" / "known_hosts",
            port=22,
            connect_timeout_s=2,
            connect_attempts_s=5,
        )
        options.update(overrides)
        runner = SSHRunner(str(options.pop("address", host.address)), **options)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


@pytest.fixture
def runner(make_runner: MakeRunner) -> SSHRunner:
    return make_runner()


def test_run_reports_exit_code_streams_lines_and_keeps_the_tail(runner: SSHRunner):
    lines: list[str] = []
    result = runner.run(
        'for i in $(seq 1 50); do echo "line $i"; done; echo oops >&2; exit 4', stream=lines.append
    )
    assert result.exit_code == 4 and not result.ok
    assert lines[0] == "line 1" and lines[-1] == "oops" and len(lines) == 51
    assert result.tail.splitlines() == lines[-TAIL_LINES:]
    assert runner.run("true").ok


def test_run_in_home_with_exported_env_values_quoted(make_runner: MakeRunner, host: SSHHost):
    runner = make_runner(env={"GREETING": "hello world"})
    tricky = 'it\'s "$HOME" `id` ; $(true)'
    result = runner.run('echo "$HOME|$PWD|$GREETING|$TRICKY"', env={"TRICKY": tricky})
    home = str(host.home)
    assert result.ok and result.tail == f"{home}|{home}|hello world|{tricky}"
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        runner.run("true", env={"BAD-NAME": "x"})


def test_timeout_kills_the_remote_command_and_its_children(
    runner: SSHRunner, host: SSHHost, work: Path
):
    started = time.monotonic()
    result = runner.run(
        f"echo $$ > {WORK}/pid; sleep 60 & echo $! > {WORK}/child; wait", timeout_s=1
    )
    assert result.exit_code == 124 and result.tail.endswith("(timed out after 1 s)")
    assert time.monotonic() - started < 5
    pids = [int((work / name).read_text()) for name in ("pid", "child")]  # as the host sees them
    deadline = time.monotonic() + 5
    while any(host.running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if host.running(pid)], "the timed-out command survived"


def test_concurrent_runs_from_threads_share_one_connection(runner: SSHRunner):
    results: dict[int, str] = {}

    def one(i: int) -> None:
        results[i] = runner.run(f"sleep 0.5; echo {i}").tail

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: str(i) for i in range(12)}
    assert runner.connections_opened == 1
    assert time.monotonic() - started < 4  # one after another would take 6 s


def test_reconnects_once_when_the_connection_died_between_calls(runner: SSHRunner, host: SSHHost):
    assert runner.run("echo first").tail == "first"
    assert host.kill_sessions(), "expected a live sshd session process"
    time.sleep(0.2)
    assert runner.run("echo second").tail == "second"
    assert runner.connections_opened == 2


def test_a_connection_lost_during_a_command_is_unreachable(runner: SSHRunner, host: SSHHost):
    outcome: list[BaseException | object] = []

    def long_command() -> None:
        try:
            outcome.append(runner.run("sleep 20"))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=long_command)
    thread.start()
    time.sleep(0.7)
    host.kill_sessions()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(outcome[0], NodeUnreachable) and "node-1" in str(outcome[0])
    assert runner.run("echo back").tail == "back"


def test_put_a_file_and_a_directory_creating_parents_keeping_modes(
    runner: SSHRunner, work: Path, tmp_path: Path
):
    single = tmp_path / "one.sh"
    single.write_text("echo one\n")
    single.chmod(0o750)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "data.txt").write_text("data")
    (tree / "sub" / "data.txt").chmod(0o600)
    (tree / "top.txt").write_text("top")
    runner.put(str(single), f"{WORK}/deep/er/one.sh")
    runner.put(str(tree), f"{WORK}/copied/tree")
    local = work
    assert (local / "deep/er/one.sh").read_text() == "echo one\n"
    assert (local / "deep/er/one.sh").stat().st_mode & 0o777 == 0o750
    assert (local / "copied/tree/sub/data.txt").read_text() == "data"
    assert (local / "copied/tree/sub/data.txt").stat().st_mode & 0o777 == 0o600
    assert (local / "copied/tree/top.txt").read_text() == "top"
    assert runner.run(f"{WORK}/deep/er/one.sh").tail == "one"


def make_source_tree(root: Path) -> None:
    files = {
        "keep.py": "x = 1\n",
        "skip.pyc": "junk",
        "app.log": "log",
        ".gitignore": "# comment\n\n*.log\n/build/\n!app.log\n",
        "build/out.bin": "bin",
        "pkg/build/kept.txt": "unanchored /build/ only matches at the root",
        "pkg/.gitignore": "local.txt\ncache/\n",
        "pkg/local.txt": "ignored in pkg",
        "pkg/cache/c.txt": "ignored dir",
        "pkg/mod.py": "y = 2\n",
        "local.txt": "kept: pkg's rules apply only below pkg",
        ".git/HEAD": "ref",
        "pkg/sub/.git/config": "nested",
        "pkg/sub/deep.txt": "deep",
        "pkg/sub/cache": "a file: cache/ matches directories only",
        "pkg/sub/.gitignore": "/deep.txt\nsub/x*.py\n",
        "pkg/sub/deeper/deep.txt": "/deep.txt is anchored to pkg/sub",
        "pkg/sub/deeper/sub/x1.py": "the tail of the path is deeper/sub/x1.py",
        "pkg/sub/deeper/sub/y1.py": "",
        "pkg/sub/deeper/sub/x/z.py": "x* is one component: x/z.py does not match",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "keep.py").chmod(0o755)


EXPECTED_SYNCED = {
    "keep.py",
    ".gitignore",
    "local.txt",
    "pkg",
    "pkg/.gitignore",
    "pkg/build",
    "pkg/build/kept.txt",
    "pkg/mod.py",
    "pkg/sub",
    "pkg/sub/cache",
    "pkg/sub/.gitignore",
    "pkg/sub/deeper",
    "pkg/sub/deeper/deep.txt",
    "pkg/sub/deeper/sub",
    "pkg/sub/deeper/sub/y1.py",
    "pkg/sub/deeper/sub/x",
    "pkg/sub/deeper/sub/x/z.py",
}
EXCLUDE = ["*.pyc", "**/.git"]
FILTERS = [".gitignore"]


def tree_of(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize("use_rsync", [True, False], ids=["rsync", "sftp"])
def test_sync_honours_excludes_and_filter_files(
    make_runner: MakeRunner, work: Path, tmp_path: Path, use_rsync: bool
):
    src = tmp_path / "src"
    make_source_tree(src)
    runner = make_runner(use_rsync=use_rsync)
    target = f"{WORK}/{'rsync' if use_rsync else 'sftp'}/code"
    runner.sync(str(src), target, exclude=EXCLUDE, filters=FILTERS)
    synced = work / ("rsync" if use_rsync else "sftp") / "code"
    assert tree_of(synced) == EXPECTED_SYNCED
    assert (synced / "keep.py").stat().st_mode & 0o777 == 0o755
    # the same rules on the local runner give the same tree
    node = tmp_path / "node"
    node.mkdir()
    LocalRunner(node).sync(str(src), "~/code", exclude=EXCLUDE, filters=FILTERS)
    assert tree_of(node / "code") == EXPECTED_SYNCED
    # a second sync carries changes
    (src / "pkg" / "mod.py").write_text("y = 3  # changed\n")
    os.utime(src / "pkg" / "mod.py", (1, 1))  # differ in mtime too, as rsync compares that
    runner.sync(str(src), target, exclude=EXCLUDE, filters=FILTERS)
    assert (synced / "pkg" / "mod.py").read_text() == "y = 3  # changed\n"


@pytest.mark.parametrize("use_rsync", [True, False], ids=["rsync", "sftp"])
def test_get_copies_a_file_and_a_directory_back(
    make_runner: MakeRunner, work: Path, tmp_path: Path, use_rsync: bool
):
    (work / "back" / "sub").mkdir(parents=True)
    (work / "back" / "one.txt").write_text("one\n")
    (work / "back" / "sub" / "two.txt").write_text("two\n")
    runner = make_runner(use_rsync=use_rsync)
    runner.get(f"{WORK}/back", str(tmp_path / "here"))
    assert tree_of(tmp_path / "here") == {"one.txt", "sub", "sub/two.txt"}
    assert (tmp_path / "here" / "sub" / "two.txt").read_text() == "two\n"
    runner.get(f"{WORK}/back/one.txt", str(tmp_path / "deep" / "copy.txt"))
    assert (tmp_path / "deep" / "copy.txt").read_text() == "one\n"
    with pytest.raises(TransferError, match="does not exist"):
        runner.get(f"{WORK}/missing", str(tmp_path / "nothing"))


def test_rsync_is_chosen_when_both_ends_have_it(make_runner: MakeRunner, host_network: HostNetwork):
    runner = make_runner()
    assert runner._rsync_usable()  # rsync and ssh are installed here, and "on the node"
    argv = runner.ssh_base_argv()
    assert "HostKeyAlias=node-1" in argv and "StrictHostKeyChecking=yes" in argv
    assert "BatchMode=yes" in argv and str(host_network.client_key) in argv


def test_an_unreachable_port_fails_fast_naming_node_address_and_cause(
    make_runner: MakeRunner, host: SSHHost
):
    runner = make_runner(port=CLOSED_PORT, connect_timeout_s=0.5, connect_attempts_s=1.5)
    started = time.monotonic()
    with pytest.raises(NodeUnreachable) as raised:
        runner.run("true")
    assert time.monotonic() - started < 4
    message = str(raised.value)
    where = f"{host.address}:{CLOSED_PORT}"
    assert f"node node-1 ({where})" in message and "connection refused" in message
    assert "attempts in" in message


def test_a_port_that_never_sends_an_ssh_banner_is_unreachable(make_runner: MakeRunner):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes connections; nobody ever speaks
        port = silent.getsockname()[1]
        runner = make_runner(
            address="127.0.0.1", port=port, connect_timeout_s=0.3, connect_attempts_s=1
        )
        started = time.monotonic()
        with pytest.raises(NodeUnreachable, match=r"no SSH banner within 0\.3 s"):
            runner.run("true")
        assert time.monotonic() - started < 4


def test_a_key_the_host_refuses_is_an_auth_error_without_retries(
    make_runner: MakeRunner, host: SSHHost, host_network: HostNetwork
):
    stranger = host_network.wrong_key
    runner = make_runner(key_path=stranger, connect_attempts_s=30)
    started = time.monotonic()
    with pytest.raises(AuthError) as raised:
        runner.run("true")
    assert time.monotonic() - started < 5  # not retried for 30 s
    message = str(raised.value)
    assert f"root@{host.address}:22" in message and str(stranger) in message
    assert "authorized_keys" in message and "ssh_user" in message


def test_without_a_key_the_default_keys_are_tried_in_order(
    make_runner: MakeRunner,
    host_network: HostNetwork,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """No auth.ssh_private_key (Ray's on-prem examples): like ssh, the agent's keys and then
    ~/.ssh's default ones; one the host refuses is passed over for the next."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(host_network.wrong_key, home / ".ssh" / "id_ed25519")  # refused by the host
    shutil.copy(host_network.client_key, home / ".ssh" / "id_rsa")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    runner = make_runner(key_path=None)
    assert runner.run("echo in").tail.strip() == "in"
    (home / ".ssh" / "id_rsa").unlink()
    with pytest.raises(
        AuthError, match=r"did not accept any of the ssh agent's or ~/\.ssh's 1 key"
    ):
        make_runner(key_path=None, known_hosts=runner.known_hosts).run("true")


def test_unusable_key_files_are_auth_errors(make_runner: MakeRunner, tmp_path: Path):
    encrypted = tmp_path / "encrypted"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", encrypted], check=True
    )
    not_a_key = tmp_path / "not_a_key"
    not_a_key.write_text("hello\n")
    not_a_key.chmod(0o600)
    cases = {tmp_path / "missing": "does not exist", encrypted: "encrypted", not_a_key: "not a"}
    for key, expected in cases.items():
        with pytest.raises(AuthError, match=expected):
            make_runner(key_path=key).run("true")


def test_a_key_others_can_read_is_refused_as_ssh_refuses_it(
    make_runner: MakeRunner, host_network: HostNetwork, tmp_path: Path
):
    key = tmp_path / "id_ed25519"
    key.write_bytes(host_network.client_key.read_bytes())
    key.chmod(0o644)
    with pytest.raises(UnprotectedKey, match=f"run `chmod 600 {key}`"):
        make_runner(key_path=key).run("true")
    key.chmod(0o600)
    assert make_runner(key_path=key).run("true").ok


def test_host_key_pinned_on_first_use_and_a_changed_one_refused(
    make_runner: MakeRunner, host: SSHHost, work: Path, tmp_path: Path
):
    known_hosts = tmp_path / "cluster" / "known_hosts"
    first = make_runner(node_id="worker-7", known_hosts=known_hosts)
    assert first.run("true").ok
    host_pub = Path(f"{host.host_key_path}.pub").read_text().split()
    assert known_hosts.read_text() == f"worker-7 {host_pub[0]} {host_pub[1]}\n"
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    assert known_hosts.parent.stat().st_mode & 0o777 == 0o700
    # OpenSSH reads the same pin (HostKeyAlias=<node id>, StrictHostKeyChecking=yes)
    ssh = subprocess.run(
        [*first.ssh_base_argv(), host.address, "echo", "openssh-ok"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert ssh.stdout.strip() == "openssh-ok", ssh.stderr
    old_fp = key_fingerprint(Path(f"{host.host_key_path}.pub"))

    with host.replaced_host_key():  # same address, port and node id; a different key
        new_fp = key_fingerprint(Path(f"{host.host_key_path}.pub"))
        assert new_fp != old_fp
        again = make_runner(node_id="worker-7", known_hosts=known_hosts)
        for runner in (first, again):  # reconnecting, and a new runner
            with pytest.raises(HostKeyChanged) as raised:
                runner.run(f"touch {WORK}/ran")
            message = str(raised.value)
            assert "worker-7" in message and old_fp in message and new_fp in message
            assert f"{known_hosts} line 1" in message
        assert not (work / "ran").exists()
        assert known_hosts.read_text() == f"worker-7 {host_pub[0]} {host_pub[1]}\n"
        # another node id on the same address is a different host: pinned on first use
        assert make_runner(node_id="worker-8", known_hosts=known_hosts).run("true").ok
        assert len(known_hosts.read_text().splitlines()) == 2


def test_proxy_command_is_used_for_commands_and_rsync(
    make_runner: MakeRunner, host: SSHHost, host_network: HostNetwork, work: Path, tmp_path: Path
):
    jump = [
        "ssh", "-F", "/dev/null", "-i", str(host_network.client_key), "-p", "22",
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        f"root@{host.address}", "-W", "%h:22",
    ]  # fmt: skip
    # the runner's own port is closed: only the proxy (a jump through the host's sshd to its
    # own address) gets there
    runner = make_runner(port=CLOSED_PORT, proxy_command=shlex.join(jump), use_rsync=True)
    assert runner.run("echo via-proxy").tail == "via-proxy"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("proxied")
    runner.sync(str(src), f"{WORK}/proxied")
    assert (work / "proxied" / "f.txt").read_text() == "proxied"


def child_runner_argv(
    host: SSHHost, client_key: Path, known_hosts: Path, command: str | None
) -> list[str]:
    options = {
        "node_id": "node-1",
        "user": "root",
        "key_path": str(client_key),
        "known_hosts": str(known_hosts),
        "port": 22,
    }
    code = (
        "import json, sys\nfrom pathlib import Path\n"
        "from rayctl.runtime.ssh_runner import SSHRunner\n"
        "o = json.loads(sys.argv[1])\n"
        "r = SSHRunner(sys.argv[3], **{**o, 'key_path': Path(o['key_path']),"
        " 'known_hosts': Path(o['known_hosts'])})\n"
        "sys.exit(r.interactive(json.loads(sys.argv[2])))\n"
    )
    return [sys.executable, "-c", code, json.dumps(options), json.dumps(command), host.address]


def test_interactive_login_shell_on_a_terminal(
    host: SSHHost, host_network: HostNetwork, tmp_path: Path
):
    master, slave = pty.openpty()
    child = subprocess.Popen(
        child_runner_argv(host, host_network.client_key, tmp_path / "known_hosts", None),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env={**os.environ, "TERM": "xterm"},
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    sent = False
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if not sent and (b"$ " in output or b"# " in output):  # the remote prompt
                os.write(master, b"echo hi$((40+2)) $TERM; exit 3\n")
                sent = True
            if child.poll() is not None and not ready:
                break
        code = child.wait(timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
        os.close(master)
    assert sent, output
    assert code == 3, output
    assert b"hi42 xterm" in output  # run by the remote shell, with the local TERM


def test_interactive_without_a_terminal_reads_piped_stdin(
    host: SSHHost, host_network: HostNetwork, tmp_path: Path
):
    piped = subprocess.run(
        child_runner_argv(host, host_network.client_key, tmp_path / "known_hosts", None),
        input=b"echo hi$((40+2)); echo err >&2; exit 3\n",
        capture_output=True,
        cwd=REPO,
        timeout=20,
    )
    assert piped.returncode == 3, piped.stderr
    assert piped.stdout.splitlines() == [b"hi42"] and piped.stderr.strip() == b"err"


def test_interactive_command_exit_code_in_process(runner: SSHRunner):
    assert runner.interactive("exit 5", env={"X": "1"}) == 5
    assert runner.interactive('test "$X" = 1', env={"X": "1"}) == 0
