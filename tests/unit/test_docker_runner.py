"""Docker mode's pieces that need no engine: which container a node gets, when it must be
re-created, and the commands that reach the host's shell (every value quoted)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from rayctl.config.schema import RegistryLogin
from rayctl.providers.registry import load_config
from rayctl.runtime.docker import (
    LABEL_REGISTRY,
    SHM_MAX_BYTES,
    ContainerSpec,
    exec_command,
    login_command,
    run_command,
    shm_size_bytes,
)
from rayctl.runtime.nodes import Node, NodeKind, NodeState

NASTY = 'it\'s $(rm -rf /) `x` "q" ; & | *'


def config(tmp_path: Path, provider: dict[str, Any] | None = None, **keys: Any):
    raw = {
        "cluster_name": "c",
        "provider": provider or {"type": "ssh", "head_ip": "10.0.0.2", "worker_ips": ["10.0.0.3"]},
        "auth": {"ssh_user": "u"},
        "docker": {"container_name": "ray", "image": "img:1"},
        **keys,
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path).config


def node(kind: NodeKind, node_type: str, node_id: str = "n1") -> Node:
    return Node(node_id, node_type, kind, NodeState.RUNNING, "10.0.0.2", None)


def spec(cfg, kind: NodeKind = NodeKind.HEAD, node_type: str | None = None) -> ContainerSpec:
    made = ContainerSpec.of(cfg, node(kind, node_type or cfg.head_node_type))
    assert made is not None
    return made


def test_no_container_name_means_no_container(tmp_path):
    cfg = config(tmp_path, docker={"image": "img:1"})
    assert ContainerSpec.of(cfg, node(NodeKind.HEAD, cfg.head_node_type)) is None


def test_head_and_worker_images_and_run_options(tmp_path):
    cfg = config(
        tmp_path,
        docker={
            "container_name": "ray",
            "image": "img:1",
            "worker_image": "wimg:2",
            "run_options": ["--ulimit", "nofile=65536:65536"],
            "head_run_options": ["-e", "H=1"],
            "worker_run_options": ["-e", "W=1"],
            "use_podman": True,
        },
    )
    head, worker = spec(cfg), spec(cfg, NodeKind.WORKER)
    assert (head.engine, head.image, head.name) == ("podman", "img:1", "ray-n1")
    assert head.run_options == ("--ulimit", "nofile=65536:65536", "-e", "H=1")
    assert worker.image == "wimg:2"
    assert worker.run_options == ("--ulimit", "nofile=65536:65536", "-e", "W=1")


def test_a_node_types_docker_keys_override_the_clusters(tmp_path):
    types = {
        "head": {"resources": {"CPU": 1}},
        "gpu": {"max_workers": 2, "docker": {"worker_image": "gpu:1", "run_options": ["-x"]}},
    }
    cfg = config(
        tmp_path,
        docker={"container_name": "ray", "image": "img:1", "run_options": ["-a"]},
        available_node_types=types,
        head_node_type="head",
        max_workers=2,
    )
    gpu = spec(cfg, NodeKind.WORKER, "gpu")
    assert (gpu.image, gpu.run_options, gpu.name) == ("gpu:1", ("-x",), "ray-n1")
    assert spec(cfg).run_options == ("-a",)


@pytest.mark.parametrize(
    ("change", "recreate"),
    [
        ({"image": "img:2"}, True),
        ({"run_options": ["--cap-add", "SYS_PTRACE"]}, True),
        ({"use_podman": True}, True),
        ({"disable_shm_size_detection": True}, True),
        ({"pull_before_run": False}, False),  # how the image is fetched, not what runs
        ({"container_name": "ray"}, False),  # the same settings, written again
    ],
)
def test_what_re_creates_the_container(tmp_path, change, recreate):
    base = {"container_name": "ray", "image": "img:1"}
    before = spec(config(tmp_path, docker=base)).digest
    after = spec(config(tmp_path, docker={**base, **change})).digest
    assert (before != after) is recreate


def test_a_new_file_mount_target_re_creates_the_container(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    before = spec(config(tmp_path))
    after = spec(config(tmp_path, file_mounts={"/data": str(data)}))
    assert before.digest != after.digest
    assert after.host_path("/data") != "/data" and after.host_path("/data").startswith("~/")
    # A changed file under the same target is synced, not a reason to re-create.
    (data / "f").write_text("x")
    assert spec(config(tmp_path, file_mounts={"/data": str(data)})).digest == after.digest


def test_local_nodes_share_the_host_home_and_processes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cfg = config(tmp_path, provider={"type": "local"}, file_mounts={"~/data": str(data)})
    local = spec(cfg)
    assert local.share_host and local.mounts == ()
    assert local.host_path("~/data") == "~/data"  # the home is mounted whole
    assert local.read_only  # the runtime's Python, seen read-only
    command = shlex.split(run_command(local, host_home="/h", container_home="/h", detected=[]))
    assert "--pid=host" in command and "--init" not in command
    assert command[command.index("-w") + 1] == "/h"
    assert "/h:/h" in command


def test_run_command_quotes_every_value(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cfg = config(
        tmp_path,
        docker={"container_name": "ray", "image": "img:1", "run_options": ["-e", f"X={NASTY}"]},
        file_mounts={"~/my data": str(data)},
    )
    made = spec(cfg)
    command = run_command(
        made, host_home="/home/u", container_home="/root", detected=["--shm-size=5b"]
    )
    argv = shlex.split(command)
    assert argv[:4] == ["docker", "run", "-d", "-i"]
    assert argv[argv.index("--name") + 1] == "ray-n1"
    assert "--net=host" in argv and "--init" in argv and "--pid=host" not in argv
    assert argv[argv.index("-w") + 1] == "/root"  # commands start in the image's home
    assert f"X={NASTY}" in argv  # one word, exactly as given
    staged = made.host_path("~/my data").removeprefix("~")
    assert f"/home/u{staged}:/root/my data" in argv
    assert f"rayctl.hash={made.digest}" in argv and "rayctl.cluster=c" in argv
    # Options come before the image, which comes right before the command.
    assert argv[-2:] == ["img:1", "bash"] and argv.index("--shm-size=5b") < len(argv) - 2


def test_exec_command_quotes_the_command_and_env():
    made = ContainerSpec(
        engine="podman",
        name="ray-n1",
        image="img",
        pull=False,
        run_options=(),
        mounts=(),
        read_only=(),
        share_host=False,
        detect_shm=True,
        detect_gpu=True,
        labels=(),
    )
    command = exec_command(made, f"echo {shlex.quote(NASTY)}", env={"K": NASTY})
    assert shlex.split(command) == [
        "podman", "exec", "-i", "-e", f"K={NASTY}", "ray-n1", "bash", "-c",
        f"echo {shlex.quote(NASTY)}",
    ]  # fmt: skip
    shell = shlex.split(exec_command(made, "", interactive=True, terminal=True))
    assert shell == ["podman", "exec", "-i", "-t", "ray-n1", "bash", "-l"]


def test_shm_size_is_a_third_of_available_memory_capped():
    assert shm_size_bytes(1_000_000) == int(1_000_000 * 1024 * 0.3 * 1.1)
    cap_kb = SHM_MAX_BYTES // 1024
    below = int(cap_kb / (0.3 * 1.1))
    assert shm_size_bytes(below) < SHM_MAX_BYTES
    assert shm_size_bytes(below * 2) == SHM_MAX_BYTES


def test_login_command_reads_the_password_on_stdin():
    login = RegistryLogin(server=f"reg:5000/{NASTY}", username=NASTY, password_file="/p")
    command = login_command("podman", login, "~/.rayctl/docker/staging/ab/password")
    words, _, source = command.partition(" < ")
    assert shlex.split(words) == [
        "podman", "login", "--username", NASTY, "--password-stdin", f"reg:5000/{NASTY}",
    ]  # fmt: skip
    assert source == '"$HOME"/.rayctl/docker/staging/ab/password'


def test_registry_login_is_resolved_and_does_not_re_create(tmp_path):
    login = {"server": "ghcr.io", "username": "me", "password_file": "secrets/pw"}
    with_login = spec(config(tmp_path, rayctl={"registry_login": login}))
    assert with_login.login is not None
    assert with_login.login.password_file == str(tmp_path / "secrets" / "pw")
    without = spec(config(tmp_path))
    assert with_login.digest == without.digest
    # The container says which registry its host logged in to (the last one out logs out).
    assert (LABEL_REGISTRY, "ghcr.io") in with_login.labels
    assert LABEL_REGISTRY not in dict(without.labels)
