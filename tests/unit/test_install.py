"""Getting rayctl and Ray onto a node: the runtime identity, rayctl's own wheel, shell paths,
and ensure_runtime's decisions (against a stand-in Python; the real install is an
integration test)."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

import rayctl
from rayctl.config.schema import ClusterConfig
from rayctl.errors import BootstrapError
from rayctl.providers import registry
from rayctl.providers.base import Node, NodeKind, NodeState, NodeStatus, Tag, recording
from rayctl.runtime import install, jobs
from rayctl.runtime.bootstrap import Bootstrapper, HeadGate, NodeSpec
from rayctl.runtime.install import (
    DEFAULT_PYTHON,
    RuntimeInstallError,
    build_wheel,
    ensure_runtime,
    runtime_identity,
    runtime_python,
    source_hash,
    sync_wheelhouse,
)
from rayctl.runtime.ray_auth import ClusterAuth
from rayctl.runtime.runner import LocalRunner
from rayctl.templates import render, shell_path

PACKAGE_DIR = Path(rayctl.__file__).resolve().parent


def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "pkg" / "rayctl"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def config_of(**raw: Any) -> ClusterConfig:
    return registry.validate(raw)


def ssh_config(tmp_path: Path, **rayctl_settings: Any) -> ClusterConfig:
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    return config_of(
        cluster_name="install-test",
        provider={"type": "ssh", "head_ip": "10.0.0.1"},
        auth={"ssh_user": "root", "ssh_private_key": str(key)},
        rayctl={"runtime": rayctl_settings},
    )


# --- identity -------------------------------------------------------------------------------


def test_runtime_identity_names_rayctl_its_source_and_ray():
    identity = runtime_identity()
    assert identity == runtime_identity()
    ray = importlib.metadata.version("ray")
    assert identity == f"rayctl {rayctl.__version__} {source_hash(PACKAGE_DIR)} ray {ray}"


def test_source_hash_follows_the_files_but_not_bytecode(tmp_path: Path):
    copy = package_copy(tmp_path)
    assert runtime_identity(copy) == runtime_identity()
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (copy / "status.pyc").write_bytes(b"junk")
    assert source_hash(copy) == source_hash()

    (copy / "errors.py").write_text((copy / "errors.py").read_text() + "\n# changed\n")
    changed = source_hash(copy)
    assert changed != source_hash()
    (copy / "templates" / "extra.j2").write_text("new")
    assert source_hash(copy) not in (changed, source_hash())


def test_runtime_hash_includes_the_identity(monkeypatch: pytest.MonkeyPatch):
    config = config_of(provider={"type": "local"})
    before = NodeSpec.of(config, config.head_node_type, NodeKind.HEAD).runtime_hash
    monkeypatch.setattr(install, "source_hash", lambda *_: "0" * 16)
    assert NodeSpec.of(config, config.head_node_type, NodeKind.HEAD).runtime_hash != before


# --- the wheel ------------------------------------------------------------------------------


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def test_build_wheel_is_a_valid_wheel_of_every_module(tmp_path: Path):
    wheel = build_wheel(tmp_path / "cache")
    version = rayctl.__version__
    assert wheel == tmp_path / "cache" / source_hash() / f"rayctl-{version}-py3-none-any.whl"
    dist_info = f"rayctl-{version}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        rows = list(csv.reader(io.StringIO(zf.read(f"{dist_info}/RECORD").decode())))
        recorded = {row[0] for row in rows}
        assert recorded == names
        for path, digest, size in rows:
            if path == f"{dist_info}/RECORD":
                assert digest == size == ""
                continue
            data = zf.read(path)
            assert digest == record_hash(data) and int(size) == len(data), path
        wheel_meta = zf.read(f"{dist_info}/WHEEL").decode()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    files = {
        f"rayctl/{p.relative_to(PACKAGE_DIR).as_posix()}"
        for p in PACKAGE_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert files <= names
    assert {n for n in names if not n.startswith(dist_info)} == files
    assert "rayctl/runtime/install.py" in names and "rayctl/templates/ray_start.j2" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "Wheel-Version: 1.0" in wheel_meta and "Root-Is-Purelib: true" in wheel_meta
    assert "Tag: py3-none-any" in wheel_meta
    assert f"Version: {version}\n" in metadata
    ray = importlib.metadata.version("ray")
    # Ray without extras: the nodes get the config's (rayctl.runtime.ray_extras).
    assert f"Requires-Dist: ray=={ray}\n" in metadata and "Requires-Dist: ray[" not in metadata
    assert "Requires-Dist: typer" in metadata and "Requires-Dist: pyyaml" in metadata
    assert "rayctl = rayctl.cli.app:main" in entry_points


def test_build_wheel_is_cached_by_source_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path / "cache"
    first = build_wheel(cache)
    stat = first.stat()

    def no_rebuild(*_args: object) -> None:
        raise AssertionError("rebuilt a cached wheel")

    monkeypatch.setattr(install, "_write_wheel", no_rebuild)
    second = build_wheel(cache)
    assert second == first and second.stat().st_mtime_ns == stat.st_mtime_ns
    assert second.stat().st_ino == stat.st_ino
    monkeypatch.undo()

    copy = package_copy(tmp_path)
    (copy / "status.py").write_text("# another tree\n")
    other = build_wheel(cache, copy)
    assert other != first and other.parent.name == source_hash(copy)
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_installed_wheel_has_the_same_identity(tmp_path: Path):
    wheel = build_wheel(tmp_path / "cache")
    target = tmp_path / "target"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    assert (target / "bin" / "rayctl").is_file()  # the console script
    code = "import rayctl; from rayctl.runtime.install import runtime_identity as r; "
    code += "print(rayctl.__file__); print(r())"
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,  # not the source tree, which `python -c` would put first on sys.path
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert Path(out[0]).is_relative_to(target)
    ray = importlib.metadata.version("ray")
    assert out[1] == f"rayctl {rayctl.__version__} {wheel.parent.name} ray {ray}"
    assert wheel.parent.name == source_hash(target / "rayctl")


# --- shell paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("/opt/my env/bin/python", "'/opt/my env/bin/python'"),
        ("~/.rayctl/runtime/bin/python", '"$HOME"/.rayctl/runtime/bin/python'),
        ("~/my env/python", "\"$HOME\"/'my env/python'"),
        ("~", '"$HOME"'),
        ("~/", '"$HOME"'),
        ("~root/bin/python", "~root/bin/python"),
        ("rel/~/x", "'rel/~/x'"),
        ("~x y/z", "'~x y/z'"),
        ("$HOME/x", "'$HOME/x'"),
    ],
)
def test_shell_path(path: str, word: str):
    assert shell_path(path) == word


def test_shell_path_means_the_home_after_cd(tmp_path: Path):
    home = tmp_path / "my home"
    (home / "a b").mkdir(parents=True)
    word = shell_path("~/a b")
    out = subprocess.run(
        ["bash", "-c", f"cd / && cd {word} && pwd"],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == str(home / "a b")


def test_ray_start_uses_a_shell_path():
    start = render(
        "ray_start.j2", ray="~/.rayctl/runtime/bin/ray", head=True, gcs_address="", args=[]
    )
    assert start.startswith('exec "$HOME"/.rayctl/runtime/bin/ray start --block --head')
    start = render("ray_start.j2", ray="/opt/v/bin/ray", head=True, gcs_address="", args=[])
    assert start.startswith("exec /opt/v/bin/ray start --block --head")


def test_runtime_python_defaults(tmp_path: Path):
    assert runtime_python(config_of(provider={"type": "local"})) == sys.executable
    assert runtime_python(ssh_config(tmp_path)) == DEFAULT_PYTHON == "~/.rayctl/runtime/bin/python"
    assert runtime_python(ssh_config(tmp_path, python="/opt/py/bin/python")) == "/opt/py/bin/python"
    local = config_of(provider={"type": "local"}, rayctl={"runtime": {"python": "/x/python"}})
    assert runtime_python(local) == "/x/python"


# --- ensure_runtime against a stand-in Python -----------------------------------------------


def fake_python(
    path: Path,
    *,
    identity: str,
    pip_exit: int = 0,
    editable: bool = False,
    later: str = "",
    unmet: str = "[]",
    unmet_after: str = "[]",
) -> Path:
    """A `python` that prints the requirements it lacks (`unmet`, JSON) and `identity` for
    -c (`later` from its second check on), says whether its rayctl is `editable`, logs pip
    calls, and fails `pip install` with `pip_exit`; after a successful install it reports
    this rayctl's identity (if it installed a wheel) and lacks `unmet_after`."""
    path.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/bash
            dir=$(dirname "$0")
            if [ "$1" = -c ]; then
                case "$2" in
                    *direct_url*)
                        if [ {int(editable)} = 1 ]; then echo "editable file:///src/tree"; fi
                        exit 0;;
                esac
                if [ -f "$dir/installed" ]; then echo unmet {unmet_after!r}
                else echo unmet {unmet!r}; fi
                if [ -f "$dir/installed-wheel" ]; then echo {runtime_identity()!r}
                elif [ -f "$dir/checked" ] && [ -n {later!r} ]; then echo {later!r}
                else echo {identity!r}; fi
                touch "$dir/checked"
                exit 0
            fi
            echo "$*" >> "$dir/pip.log"
            case "$*" in
                *" install "*)
                    for i in $(seq 1 60); do echo "pip line $i"; done
                    if [ {pip_exit} != 0 ]; then
                        echo "ERROR: No matching distribution found for ray[default]"
                        exit {pip_exit}
                    fi
                    touch "$dir/installed"
                    case "$*" in *.whl*) touch "$dir/installed-wheel";; esac;;
            esac
            """
        )
    )
    path.chmod(0o755)
    return path


def test_ensure_runtime_with_the_same_identity_runs_one_command(tmp_path: Path):
    python = fake_python(tmp_path / "python", identity=runtime_identity())
    config = ssh_config(tmp_path, python=str(python))
    (tmp_path / "node").mkdir()
    lines: list[str] = []
    installed = ensure_runtime(
        LocalRunner(tmp_path / "node"), config, stream=lines.append, cache_dir=tmp_path / "c"
    )
    assert installed is False
    ray = importlib.metadata.version("ray")
    assert [line for line in lines if line.startswith("$ ")] == [
        f"$ {python} -c 'import json, sys; from rayctl.config.runtime_packages import "
        "unmet_requirements; from rayctl.runtime.install import runtime_identity; "
        'print("unmet", json.dumps(unmet_requirements(sys.argv[1:]))); '
        f"print(runtime_identity())' 'ray[data,default,serve,train,tune]=={ray}'"
    ]
    assert not (tmp_path / "c").exists()  # no wheel was built


def test_a_runtime_lacking_packages_gets_just_them(tmp_path: Path):
    python = fake_python(
        tmp_path / "python", identity=runtime_identity(), unmet='["lightgbm==4.*"]'
    )
    config = ssh_config(tmp_path, python=str(python), packages=["numpy", "lightgbm==4.*"])
    (tmp_path / "node").mkdir()
    assert ensure_runtime(LocalRunner(tmp_path / "node"), config, cache_dir=tmp_path / "c")
    pip = (tmp_path / "pip.log").read_text().splitlines()
    assert pip == [
        "-m pip --disable-pip-version-check --no-input install --progress-bar off lightgbm==4.*"
    ]
    assert not (tmp_path / "c").exists()  # no wheel was built


def test_a_package_still_missing_after_pip_is_an_install_error(tmp_path: Path):
    python = fake_python(
        tmp_path / "python",
        identity=runtime_identity(),
        unmet='["lightgbm==4.*"]',
        unmet_after='["lightgbm==4.*"]',
    )
    config = ssh_config(tmp_path, python=str(python), packages=["lightgbm==4.*"])
    (tmp_path / "node").mkdir()
    with pytest.raises(RuntimeInstallError, match=r"still lacks lightgbm==4\.\*"):
        ensure_runtime(LocalRunner(tmp_path / "node"), config, cache_dir=tmp_path / "c")


def test_ensure_runtime_installs_the_wheel_from_the_wheelhouse(tmp_path: Path):
    python = fake_python(tmp_path / "python", identity="rayctl 0.0.1 old ray 2.0.0")
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "ray-x.whl").write_text("")
    config = ssh_config(tmp_path, python=str(python), wheelhouse=str(wheelhouse))
    node = tmp_path / "node"
    node.mkdir()
    lines: list[str] = []
    sync_wheelhouse(LocalRunner(node), config)  # as bootstrap does first
    assert ensure_runtime(LocalRunner(node), config, stream=lines.append, cache_dir=tmp_path / "c")
    wheel = f"rayctl-{rayctl.__version__}-py3-none-any.whl"
    assert (node / ".rayctl/runtime/wheels" / source_hash() / wheel).is_file()
    assert (node / ".rayctl/wheelhouse/ray-x.whl").is_file()
    pip = (tmp_path / "pip.log").read_text().splitlines()
    assert pip[0].startswith("-m pip") and "uninstall -y -q rayctl" in pip[0]
    assert "install --progress-bar off --no-index --find-links " in pip[1]
    ray = importlib.metadata.version("ray")
    assert pip[1].endswith(
        f"{node}/.rayctl/wheelhouse {node}/.rayctl/runtime/wheels/{source_hash()}/{wheel} "
        f"ray[data,default,serve,train,tune]=={ray}"
    )
    assert "pip line 60" in lines


def test_ensure_runtime_failure_carries_pips_tail(tmp_path: Path):
    python = fake_python(tmp_path / "python", identity="rayctl 0.0.1 old ray 2.0.0", pip_exit=1)
    config = ssh_config(tmp_path, python=str(python))
    (tmp_path / "node").mkdir()
    with pytest.raises(RuntimeInstallError) as failure:
        ensure_runtime(LocalRunner(tmp_path / "node"), config, cache_dir=tmp_path / "c")
    message = str(failure.value)
    assert "from the package index failed (exit 1)" in message
    assert "ERROR: No matching distribution found for ray[default]" in message
    assert "--no-index" not in (tmp_path / "pip.log").read_text()


def test_ensure_runtime_reports_a_missing_python3(tmp_path: Path):
    config = ssh_config(tmp_path)  # the default venv, which does not exist yet
    (tmp_path / "node").mkdir()
    bin_dir = tmp_path / "bin"  # a PATH with bash's tools but no python3
    bin_dir.mkdir()
    for tool in ("bash", "rm", "dirname", "test"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    runner = LocalRunner(tmp_path / "node", env={"PATH": str(bin_dir)})
    with pytest.raises(RuntimeInstallError, match="apt-get install python3-venv") as failure:
        ensure_runtime(runner, config, cache_dir=tmp_path / "c")
    assert "python3: not found" in str(failure.value)


def test_ensure_runtime_never_replaces_an_editable_install(tmp_path: Path):
    python = fake_python(tmp_path / "python", identity="rayctl 0.1.0 other ray 2.0", editable=True)
    config = ssh_config(tmp_path, python=str(python))
    (tmp_path / "node").mkdir()
    with pytest.raises(RuntimeInstallError, match="editable mode") as failure:
        ensure_runtime(LocalRunner(tmp_path / "node"), config, cache_dir=tmp_path / "c")
    assert "file:///src/tree" in str(failure.value)
    assert not (tmp_path / "pip.log").exists() and not (tmp_path / "c").exists()


def test_an_editable_tree_edited_meanwhile_is_checked_again(tmp_path: Path):
    # A shared filesystem: the node's editable rayctl is this tree, changed between hashes.
    python = fake_python(
        tmp_path / "python", identity="mid-edit", editable=True, later=runtime_identity()
    )
    config = ssh_config(tmp_path, python=str(python))
    (tmp_path / "node").mkdir()
    assert not ensure_runtime(LocalRunner(tmp_path / "node"), config, cache_dir=tmp_path / "c")
    assert not (tmp_path / "pip.log").exists()


def test_a_configured_python_that_is_missing_is_named(tmp_path: Path):
    config = ssh_config(tmp_path, python="/nonexistent/bin/python")
    (tmp_path / "node").mkdir()
    with pytest.raises(RuntimeInstallError, match="/nonexistent/bin/python is not an interp"):
        ensure_runtime(LocalRunner(tmp_path / "node"), config, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_missing_wheelhouse_is_an_install_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path / "laptop"))
    config = ssh_config(tmp_path, wheelhouse=str(tmp_path / "nowhere"))
    (tmp_path / "node").mkdir()
    with pytest.raises(RuntimeInstallError, match=r"wheelhouse: .*nowhere is not a directory"):
        sync_wheelhouse(LocalRunner(tmp_path / "node"), config)


# --- bootstrap: a failed install fails the node with pip's tail ------------------------------


class OneNodeProvider:
    cluster_name = "install-test"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.tags: dict[str, str] = {}

    def runner(self, _node: Node) -> LocalRunner:
        return LocalRunner(self.home)

    def set_tags(self, _node_id: str, tags: dict[str, str]) -> None:
        self.tags.update(tags)


def test_bootstrap_fails_the_node_with_pips_tail(tmp_path: Path):
    python = fake_python(tmp_path / "python", identity="old", pip_exit=1)
    config = ssh_config(tmp_path, python=str(python))
    config = config.model_copy(update={"setup_commands": ["echo user-setup > ~/setup-ran"]})
    home = tmp_path / "node"
    home.mkdir()
    provider = OneNodeProvider(home)
    node_type = config.head_node_type  # the provider's default types vary
    node = Node("n-1", node_type, NodeKind.WORKER, NodeState.RUNNING, "10.0.0.2", None)
    stages: list[tuple[NodeStatus, str]] = []
    boot = Bootstrapper(
        config,
        auth=ClusterAuth(config.cluster_name, None),
        on_stage=recording(
            provider,  # type: ignore[arg-type]
            lambda _n, change: stages.append((change.stage, change.detail)),
        ),
        log_dir=tmp_path / "logs",
    )
    with pytest.raises(BootstrapError) as failure:
        boot.bootstrap(node, provider, HeadGate())  # type: ignore[arg-type]
    assert failure.value.stage == NodeStatus.SETTING_UP.value
    assert "No matching distribution found" in failure.value.detail
    assert provider.tags[Tag.STATUS] == NodeStatus.FAILED.value
    assert "No matching distribution found" in provider.tags[Tag.ERROR]
    assert stages[-1][0] is NodeStatus.FAILED
    assert not (home / "setup-ran").exists()  # the user's setup waits for the runtime
    log = (tmp_path / "logs" / "n-1.log").read_text()
    assert "pip line 60" in log and "-m pip" in log


def test_every_bootstrap_brings_the_nodes_wheelhouse_up_to_date(tmp_path: Path):
    """Also of a node set up before (runtime hash unchanged, so no setup runs): what was
    added to the wheelhouse since reaches it, for jobs' `--pip`."""
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    config = ssh_config(tmp_path, wheelhouse=str(wheelhouse))
    home = tmp_path / "node"
    home.mkdir()
    provider = OneNodeProvider(home)
    spec = NodeSpec.of(config, config.head_node_type, NodeKind.WORKER)
    tags = {Tag.RUNTIME_HASH: spec.runtime_hash, Tag.STATUS: NodeStatus.READY.value}
    node = Node("n-1", spec.node_type, NodeKind.WORKER, NodeState.RUNNING, "10.0.0.2", None, tags)
    (wheelhouse / "added-1.0-py3-none-any.whl").write_text("")
    gate = HeadGate()
    gate.fail("no head here")  # the worker stops where it would start Ray
    boot = Bootstrapper(
        config, auth=ClusterAuth(config.cluster_name, None), on_stage=lambda *_: None
    )
    with pytest.raises(BootstrapError, match="no head here"):
        boot.bootstrap(node, provider, gate)  # type: ignore[arg-type]
    assert (home / ".rayctl/wheelhouse/added-1.0-py3-none-any.whl").is_file()
    # Nodes on this machine read the wheelhouse itself: no copy.
    local = config_of(
        provider={"type": "local"}, rayctl={"runtime": {"wheelhouse": str(wheelhouse)}}
    )
    sync_wheelhouse(LocalRunner(home / "local"), local)
    assert not (home / "local").exists()


def test_local_nodes_are_not_installed_on(tmp_path: Path):
    python = fake_python(tmp_path / "python", identity="old", pip_exit=1)
    config = config_of(
        provider={"type": "local"},
        rayctl={"runtime": {"python": str(python)}},
        setup_commands=["echo set-up > ~/setup-ran"],
    )
    home = tmp_path / "node"
    home.mkdir()
    node = Node("n-1", config.head_node_type, NodeKind.HEAD, NodeState.RUNNING, "127.0.0.2", None)
    boot = Bootstrapper(
        config, auth=ClusterAuth(config.cluster_name, None), on_stage=lambda *_: None
    )
    runner = LocalRunner(home)
    boot._set_up(runner, runner, node)
    assert (home / "setup-ran").is_file()
    assert not (tmp_path / "checked").exists() and not (tmp_path / "pip.log").exists()


def test_a_jobs_ray_calls_run_on_the_head_with_the_runtime_venvs_python(tmp_path: Path):
    """The head's job agent runs with the runtime's Python and the cluster's token; the job's
    output passes through while the agent's results (marked lines) do not."""
    home = tmp_path / "node"
    python = home / ".rayctl" / "runtime" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/bin/bash\n"
        'echo "ran ${@:1:4} ${@:6} in $PWD"\n'
        'echo "auth $RAY_AUTH_MODE $RAY_AUTH_TOKEN_PATH ${RAY_AUTH_TOKEN:-no-token-value}"\n'
        """echo "$5" '{"submitted": "'"$6"'"}'\n"""
        'echo "job output"\n'
        """echo "$5" '{"job_id": "'"$6"'", "status": "FAILED", "start_time": 1.0, """
        """"end_time": 2.0, "entrypoint": "x", "exit_code": 7, "message": ""}'\n"""
    )
    python.chmod(0o755)
    script = tmp_path / "job.py"
    script.write_text("print('hi')\n")
    head = Node("h", "head", NodeKind.HEAD, NodeState.RUNNING, "127.0.0.2", None)
    # A RAY_AUTH_TOKEN inherited from this machine would override the file: the agent drops it.
    runner = LocalRunner(home, env={"RAY_AUTH_TOKEN": "stale"})
    head_jobs = jobs.HeadJobs(
        runner, DEFAULT_PYTHON, head.gcs_address, ClusterAuth("c1", tmp_path / "token")
    )
    lines: list[str] = []
    job_id = jobs.new_job_id()
    submission = jobs.Submission(str(script), ["a b", "--x"], None)
    end = head_jobs.run(
        job_id, submission, on_submitted=lambda: lines.append("submitted"), output=lines.append
    )
    assert lines == [
        f"ran -m rayctl.runtime.job_agent run 127.0.0.2:6379 {job_id} "
        f'~/.rayctl/jobs/{job_id} job.py ["a b", "--x"] {{}} in {home}',
        f"auth token {home}/.rayctl/clusters/c1/ray_auth_token no-token-value",
        "submitted",
        "job output",
    ]
    assert (end.job_id, end.status, end.exit_code) == (job_id, "FAILED", 7)
    assert (home / ".rayctl" / "jobs" / job_id / "job.py").read_text() == "print('hi')\n"
