"""Docker mode end to end with a real container engine (rootful podman, tests/podman.py):
Ray runs inside one container per node, jobs run there, and `down` leaves nothing."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rayctl.config.schema import RegistryLogin
from rayctl.providers.local.instances import marked_pids
from rayctl.runtime.docker import LABEL_REGISTRY, ContainerError, ContainerSpec, DockerRunner
from rayctl.runtime.runner import LocalRunner
from tests.conftest import REPO, unique_name, wait_for
from tests.podman import Podman, host_engine, podman_engine, programs_in, require_podman
from tests.registry import Registry, registry, require_registry
from tests.sshhosts import HostNetwork

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "spread_tasks.py"
SPEC = ContainerSpec(
    engine="podman",
    name="rayctl-test-none",
    image="localhost/rayctl-test:none",
    pull=False,
    run_options=(),
    mounts=(),
    read_only=(),
    share_host=False,
    detect_shm=False,
    detect_gpu=False,
    labels=(),
)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    require_podman()
    with podman_engine(tmp_path_factory.mktemp("podman")) as engine:
        saved = {k: os.environ.get(k) for k in engine.env}
        os.environ.update(engine.env)  # rayctl's podman commands use the tests' engine
        try:
            yield engine
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def test_local_cluster_runs_ray_in_containers(podman, make_cluster, cli, rayctl_home, tmp_path):
    mounted = tmp_path / "data"
    mounted.mkdir()
    (mounted / "hello.txt").write_text("from the laptop\n")
    cluster = make_cluster(
        "dk",
        docker={
            "container_name": "rayctl_test",
            "image": podman.image,
            "pull_before_run": False,
            "use_podman": True,
            "run_options": ["-v", "/usr:/usr:ro"],  # the test image's bash (tests/podman.py)
        },
        max_workers=1,  # on a loaded machine, few Rays restarting at once
        file_mounts={"~/data": str(mounted)},
        setup_commands=["test -e /run/.containerenv && echo in-container > ~/where"],
    )
    label = f"rayctl.cluster={cluster.name}"
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    status = cluster.status(cli)
    nodes = {n["id"] for n in status["nodes"]}
    containers = podman.containers(label)
    assert sorted(containers) == sorted(f"rayctl_test-{n}" for n in nodes)

    # Each node's raylet runs in its container's cgroup (podman names it by container id).
    for node_id in nodes:
        cid = podman.run("inspect", "--format", "{{.Id}}", f"rayctl_test-{node_id}").strip()
        raylets = [
            pid
            for pid in marked_pids("RAYCTL_PROC", node_id)
            if b"raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        ]
        assert raylets, f"no raylet of {node_id}"
        assert all(f"libpod-{cid}" in cgroup_of(pid) for pid in raylets)

    job = cli("submit", cluster.config, EXAMPLE, "--", "4", "1", "0")
    assert job.code == 0, job.text
    assert "4 tasks ran on 2 nodes" in job.out
    # Setup ran inside the container; file mounts are there; exec runs there too (its
    # output goes to this process's own stdout: it leaves a file in the head's home instead).
    seen = "test -e /run/.containerenv && cat ~/where ~/data/hello.txt > ~/seen"
    assert cli("exec", cluster.config, seen).code == 0
    head = next(n["id"] for n in status["nodes"] if n["kind"] == "head")
    home = rayctl_home / "clusters" / cluster.name / "nodes" / head
    assert (home / "seen").read_text() == "in-container\nfrom the laptop\n"

    # An unchanged `up` keeps the containers (the same ids).
    def container_ids() -> list[str]:
        return sorted(podman.run("ps", "-q", "--no-trunc", "--filter", f"label={label}").split())

    ids = container_ids()
    again = cli("up", cluster.config, "--yes")
    assert again.code == 0, again.text
    assert container_ids() == ids

    # Changed run options re-create the containers; setup runs again in the new ones.
    changed = yaml.safe_load(cluster.config.read_text())
    changed["docker"]["run_options"] += ["-e", "RAYCTL_TEST_MARK=two words"]
    cluster.config.write_text(yaml.safe_dump(changed))
    (home / "where").unlink()
    third = cli("up", cluster.config, "--yes")
    assert third.code == 0, third.text
    assert not set(container_ids()) & set(ids)
    marked = 'test "$RAYCTL_TEST_MARK" = "two words" && cat ~/where > ~/seen'
    assert cli("exec", cluster.config, marked).code == 0
    assert (home / "seen").read_text() == "in-container\n"

    down = cli("down", cluster.config, "--yes")
    assert down.code == 0, down.text
    assert podman.containers(label) == []
    assert podman.images() == [podman.image]  # rayctl pulled none, so removes none


@pytest.fixture
def host_registry(host_network: HostNetwork, tmp_path: Path) -> Iterator[Registry]:
    """A private registry the test hosts reach, at their network's bridge address."""
    require_registry()
    with registry(tmp_path / "registry", host=host_network.gateway) as reg:
        yield reg


@pytest.fixture
def host_engines(host_network: HostNetwork, host_registry: Registry) -> Iterator[dict[str, Podman]]:
    """The tests' podman on the first two test hosts (head and worker), by address."""
    require_podman()
    conf = host_registry.registries_conf
    with contextlib.ExitStack() as stack:
        yield {h.address: stack.enter_context(host_engine(h, conf)) for h in host_network.hosts[:2]}


def files_holding(root: Path, *secrets: str) -> list[Path]:
    """The files under `root` (links not followed) that contain any of `secrets`."""
    found = []
    for parent, _, names in os.walk(root):
        for path in (Path(parent) / name for name in names):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                found += [path] if any(s.encode() in data for s in secrets) else []
    return found


def test_ssh_cluster_runs_ray_in_containers(
    host_network: HostNetwork,
    host_engines: dict[str, Podman],
    host_registry: Registry,
    cli,
    rayctl_home,
    tmp_path,
):
    head, worker = host_network.hosts[:2]
    image = host_engines[head.address].image
    mounted = tmp_path / "data"
    mounted.mkdir()
    (mounted / "hello.txt").write_text("from the laptop\n")
    password = tmp_path / "registry-password"
    password.write_text(host_registry.password)
    name = unique_name("dkssh")
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cluster_name": name,
                "max_workers": 1,
                "idle_timeout_minutes": 10,  # the worker stays until `down`
                "provider": {
                    "type": "ssh",
                    "head_ip": head.address,
                    "worker_ips": [worker.address],
                },
                "auth": {"ssh_user": "root", "ssh_private_key": str(host_network.client_key)},
                "available_node_types": {
                    "head": {"resources": {"CPU": 1}},
                    "worker": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 1},
                },
                "head_node_type": "head",
                # The hosts share this machine's files: its Python and this checkout, read-only.
                "rayctl": {
                    "runtime": {"python": sys.executable},
                    "registry_login": {
                        "server": host_registry.server,
                        "username": host_registry.username,
                        "password_file": str(password),
                    },
                },
                "docker": {
                    "container_name": "rayctl_test",
                    "image": image,
                    "pull_before_run": False,
                    "use_podman": True,
                    "run_options": [
                        *("-v", "/usr:/usr:ro", "-v", f"{REPO}:{REPO}:ro"),  # the venv is in REPO
                        *("-v", f"{sys.base_prefix}:{sys.base_prefix}:ro"),  # its Python
                    ],
                },
                "file_mounts": {"~/data": str(mounted)},
                "setup_commands": ["test -e /run/.containerenv && echo in-container > ~/where"],
            }
        )
    )
    # Each host imported its own image: the worker's also gets the head's name.
    for engine in host_engines.values():
        engine.run("tag", engine.image, image)
    label = f"rayctl.cluster={name}"
    # What a host keeps of the password: the password itself, or the engine's login entry.
    kept_forms = (
        host_registry.password,
        base64.b64encode(f"{host_registry.username}:{host_registry.password}".encode()).decode(),
    )
    try:
        up = cli("up", config, "--yes")
        assert up.code == 0, up.text
        status = json.loads(cli("status", config, "--json").out)
        assert [n["kind"] for n in status["nodes"]] == ["head"], status  # no worker yet
        assert status["monitor_running"]  # in the head's container

        # The head's engine logged in to the registry; the head keeps the password for the
        # workers its autoscaler launches, readable by its user only.
        assert host_registry.server in host_engines[head.address].logins()
        assert host_engines[worker.address].logins() == {}
        kept = f".rayctl/clusters/{name}/registry_password"
        (head_container,) = host_engines[head.address].containers(label)
        mode = host_engines[head.address].run("exec", head_container, "stat", "-c", "%a", kept)
        assert mode.strip() == "600"
        assert files_holding(head.dir, *kept_forms)  # what the check after `down` looks for

        # The job needs a second CPU: the head's autoscaler launches the worker, on the other
        # host, and logs that host's engine in with the head's copy of the password.
        job = cli("submit", config, EXAMPLE, "--", "4", "1", "180")
        assert job.code == 0, job.text
        assert "tasks ran on 2 nodes (1 joined while the job ran)" in job.out
        assert host_registry.server in host_engines[worker.address].logins()

        # One container per host, made by the podman inside that host; a raylet runs in each
        # (in the container's cgroup, in a PID namespace of its own within the host's).
        for host in (head, worker):
            engine = host_engines[host.address]
            (container,) = engine.containers(label)
            cid = engine.run("inspect", "--format", "{{.Id}}", container).strip()
            assert "raylet" in programs_in(f"libpod-{cid}"), f"no raylet in {host.name}'s container"

        # Setup and exec ran in the head's container; the file mount is there.
        seen = "test -e /run/.containerenv && cat ~/where ~/data/hello.txt"
        result = cli("exec", config, f"{seen} > /tmp/seen")
        assert result.code == 0, result.text
        copied = host_engines[head.address].run("exec", head_container, "cat", "/tmp/seen")
        assert copied == "in-container\nfrom the laptop\n"
    finally:
        down = cli("down", config, "--yes")
    assert down.code == 0, down.text
    for host in (head, worker):
        engine = host_engines[host.address]
        assert engine.containers(label) == []
        assert set(engine.images()) == {image, engine.image}  # rayctl pulled none
        assert not (host.home / ".rayctl" / "docker").exists()  # the file mounts' copies
        assert wait_for(lambda h=host: not h.processes(), 30, f"{host.name} quiet")
        # Logged out; no copy of the password is left on the host.
        assert host_registry.server not in engine.logins()
        assert files_holding(host.dir, *kept_forms) == []


def test_registry_login_runs_on_every_setup(tmp_path):
    """A node's engine logs in to a real registry each time rayctl sets the node up, the
    password read from a private copy that is gone afterwards, and never shown."""
    require_podman()
    require_registry()
    with registry(tmp_path / "registry") as reg:
        password = tmp_path / "password"
        password.write_text(reg.password)
        auth = tmp_path / "auth.json"  # where this podman keeps logins (not the machine's)
        home = tmp_path / "home"
        home.mkdir()
        host = LocalRunner(
            home,
            {
                "REGISTRY_AUTH_FILE": str(auth),
                "CONTAINERS_REGISTRIES_CONF": str(reg.registries_conf),
            },
        )
        login = RegistryLogin(server=reg.server, username=reg.username, password_file=str(password))
        node = DockerRunner(host, replace(SPEC, login=login))

        staging = home / ".rayctl" / "docker" / "staging"
        for _ in range(2):  # a second setup logs in again (a login expires)
            auth.unlink(missing_ok=True)
            assert node.needs_create()  # no container yet
            assert reg.server in json.loads(auth.read_text())["auths"]
            assert not any(staging.iterdir())  # the password's copy is gone

        password.write_text("wrong")
        auth.unlink()
        with pytest.raises(ContainerError, match=f"cannot log in to {reg.server}") as failed:
            node.needs_create()
        assert "wrong" not in str(failed.value)
        assert not auth.exists()
        assert not any(staging.iterdir())


def test_the_last_container_on_a_host_logs_its_engine_out(podman, tmp_path):
    """Nodes that share a host (the local provider's) share its engine's login: removing one
    node's container keeps the login for the other, removing the last logs the engine out."""
    require_registry()
    with registry(tmp_path / "registry") as reg:
        password = tmp_path / "password"
        password.write_text(reg.password)
        auth = tmp_path / "auth.json"
        home = tmp_path / "home"
        home.mkdir()
        env = {
            "REGISTRY_AUTH_FILE": str(auth),
            "CONTAINERS_REGISTRIES_CONF": str(reg.registries_conf),
        }
        host = LocalRunner(home, env)
        login = RegistryLogin(server=reg.server, username=reg.username, password_file=str(password))
        spec = replace(
            SPEC,
            image=podman.image,
            run_options=("-v", "/usr:/usr:ro"),  # the test image's bash (tests/podman.py)
            labels=((LABEL_REGISTRY, reg.server),),
            login=login,
        )
        first, last = (
            DockerRunner(host, replace(spec, name=f"{unique_name('dk')}-{n}")) for n in (1, 2)
        )
        for node in (first, last):
            assert node.needs_create()
            node.create()

        first.remove()
        assert podman.containers(f"{LABEL_REGISTRY}={reg.server}") == [last.spec.name]
        assert reg.server in json.loads(auth.read_text())["auths"]
        last.remove()
        assert podman.containers(f"{LABEL_REGISTRY}={reg.server}") == []
        assert json.loads(auth.read_text())["auths"] == {}
