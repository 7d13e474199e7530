"""The GCP provider against the GCE fake (tests/fakes/gce) in-process: the real
google-cloud-compute clients over HTTP on loopback, nothing of the SDK mocked. Fake instances
have internal addresses in 10.220.1.0/24 and documentation public ones; nothing here opens a
connection to any instance address."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.api_core import retry as gretry

from rayctl.errors import AuthError, CapacityError, QuotaError
from rayctl.ops import status as status_module
from rayctl.ops.down import down
from rayctl.ops.status import cluster_status
from rayctl.providers.base import NodeKind, NodeState, Tag
from rayctl.providers.gcp import errors as gcp_errors
from rayctl.providers.gcp import instances as gcp_instances
from rayctl.providers.gcp import labels
from rayctl.providers.gcp import setup as gcp_setup
from rayctl.providers.gcp.instances import GCPProvider
from rayctl.providers.registry import load_config
from tests.conftest import CliResult
from tests.fakes.gce import ApiError, GceFake

ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
WORKER = "ray_worker_small"
HEAD = "ray_head_default"
ALL_RAY = "6379-6384, 8265, 10001-19999, 52365"
IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"


@pytest.fixture
def gce(monkeypatch: pytest.MonkeyPatch) -> Iterator[GceFake]:
    with GceFake(zones=ZONES) as fake:
        monkeypatch.setenv(gcp_setup.ENDPOINT_ENV, fake.endpoint)
        monkeypatch.setenv(gcp_setup.CREDENTIALS_ENV, "anonymous")
        # Throttling is retried at once here (GCE's pauses are seconds).
        fast = gretry.Retry(predicate=gcp_errors._rate_limited, initial=0.01, maximum=0.01)
        monkeypatch.setattr(gcp_errors, "_RETRY", fast)
        yield fake


def write_config(tmp_path: Path, cluster: str = "test", firewall_rules: str = "[]") -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            cluster_name: {cluster}
            provider:
              type: gcp
              project_id: test-project
              region: us-central1
              availability_zone: us-central1-a
              availability_zones: [us-central1-b, us-central1-c]
              use_internal_ips: true
              ssh_source_cidrs: [10.220.1.0/24]
              firewall_rules: {firewall_rules}
            auth: {{ssh_user: ubuntu}}
            available_node_types:
              {HEAD}:
                node_config:
                  machineType: n2-standard-2
                  disks:
                    - boot: true
                      autoDelete: true
                      initializeParams:
                        sourceImage: {IMAGE}
              {WORKER}:
                node_config:
                  machineType: n2-standard-2
                  disks:
                    - boot: true
                      autoDelete: false
                      initializeParams:
                        sourceImage: {IMAGE}
            """
        )
    )
    return path


def provider(tmp_path: Path, cluster: str = "test", firewall_rules: str = "[]") -> GCPProvider:
    config = load_config(write_config(tmp_path, cluster, firewall_rules)).config
    return GCPProvider(config, home=tmp_path / "home")


def launch_tags(kind: NodeKind) -> dict[str, str]:
    return {Tag.KIND: kind.value, Tag.LAUNCH_HASH: "abc123"}


def test_a_batch_is_one_bulk_insert_with_labels_on_instances_and_disks(
    gce: GceFake, tmp_path: Path
) -> None:
    p = provider(tmp_path)
    nodes = p.create_nodes(WORKER, 5, launch_tags(NodeKind.WORKER))
    assert gce.calls["compute.instances.bulkInsert"] == 1
    assert gce.calls["compute.instances.insert"] == 0
    assert len(nodes) == 5 and len({n.id for n in nodes}) == 5
    assert all(n.internal_ip.startswith("10.220.1.") for n in nodes)
    assert all(n.tags[Tag.NODE_TYPE] == WORKER for n in nodes)
    disks = p.gcp.compute(gcp_instances.compute_v1.DisksClient).list(
        project="test-project", zone="us-central1-a"
    )
    disk_tags = [labels.from_labels(dict(d.labels)) for d in disks]
    assert len(disk_tags) == 5
    assert all(t[Tag.CLUSTER] == "test" and t[Tag.KIND] == "worker" for t in disk_tags)


def test_zones_are_tried_in_order_and_capacity_error_names_every_zone(
    gce: GceFake, tmp_path: Path
) -> None:
    p = provider(tmp_path)
    gce.stockout("us-central1-a")
    gce.machine_type_unavailable("us-central1-b", "n2-standard-2")
    (node,) = p.create_nodes(WORKER, 1, launch_tags(NodeKind.WORKER))
    assert p._zone(node.id) == "us-central1-c"
    assert gce.calls["compute.instances.bulkInsert"] == 3
    gce.stockout("us-central1-c", with_details=True)
    with pytest.raises(CapacityError) as caught:
        p.create_nodes(WORKER, 2, launch_tags(NodeKind.WORKER))
    text = str(caught.value)
    assert "in zones us-central1-a, us-central1-b, us-central1-c: " in text
    failures = [text.rindex(f"{z}: ") for z in ZONES]  # each zone's reason, in order
    assert failures == sorted(failures)
    assert "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS" in text
    assert len(p.list_nodes()) == 1


def test_quota_is_a_quota_error_without_trying_other_zones(gce: GceFake, tmp_path: Path) -> None:
    p = provider(tmp_path)
    gce.quota_exceeded("us-central1-a")
    with pytest.raises(QuotaError, match="CPUS"):
        p.create_nodes(WORKER, 3, launch_tags(NodeKind.WORKER))
    assert gce.calls["compute.instances.bulkInsert"] == 1
    assert p.list_nodes() == []


def test_missing_permissions_are_named_before_anything_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lacking = {"compute.firewalls.create", "iam.serviceAccounts.create"}
    granted = set(gcp_setup.LAUNCH_PERMISSIONS + gcp_setup.SERVICE_ACCOUNT_PERMISSIONS) - lacking
    with GceFake(zones=ZONES, granted_permissions=granted) as fake:
        monkeypatch.setenv(gcp_setup.ENDPOINT_ENV, fake.endpoint)
        monkeypatch.setenv(gcp_setup.CREDENTIALS_ENV, "anonymous")
        p = provider(tmp_path)
        with pytest.raises(AuthError) as caught:
            p.bootstrap()
        assert "compute.firewalls.create, iam.serviceAccounts.create" in str(caught.value)
        created = [c for c in fake.calls if c.endswith((".insert", ".create", "setIamPolicy"))]
        assert created == []


def test_listing_follows_every_page(
    gce: GceFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcp_instances, "PAGE", 2)
    p = provider(tmp_path)
    p.create_nodes(WORKER, 5, launch_tags(NodeKind.WORKER))
    before = gce.calls["compute.instances.aggregatedList"]
    assert len(p.list_nodes()) == 5
    assert gce.calls["compute.instances.aggregatedList"] - before == 3  # 2 + 2 + 1


def test_rate_limited_calls_are_retried(gce: GceFake, tmp_path: Path) -> None:
    p = provider(tmp_path)
    gce.rate_limit(2, methods=["compute.instances.bulkInsert"])
    assert len(p.create_nodes(WORKER, 2, launch_tags(NodeKind.WORKER))) == 2
    assert gce.calls["compute.instances.bulkInsert"] == 3


def test_a_preempted_spot_worker_is_gone(gce: GceFake, tmp_path: Path) -> None:
    p = provider(tmp_path)
    # Spot, in the shape Ray's examples give `scheduling`: a list of one mapping.
    p._config.available_node_types[WORKER].node_config["scheduling"] = [
        {"provisioningModel": "SPOT", "instanceTerminationAction": "STOP"}
    ]
    a, b = p.create_nodes(WORKER, 2, launch_tags(NodeKind.WORKER))
    gce.preempt(p._zone(a.id), a.id)
    assert [n.id for n in p.list_nodes()] == [b.id]
    p.terminate_nodes([a.id, b.id])  # a stopped spot VM is deleted, never kept as a cache
    assert p._list() == []


def test_labels_encode_any_cluster_name_and_long_values(gce: GceFake, tmp_path: Path) -> None:
    p = provider(tmp_path, cluster="De.v_1")
    other = provider(tmp_path, cluster="de-v-1")
    (node,) = p.create_nodes(HEAD, 1, launch_tags(NodeKind.HEAD))
    other.create_nodes(WORKER, 1, launch_tags(NodeKind.WORKER))
    error = "Traceback: ValueError('Bad Thing') " * 8  # 280 characters, capitals and all
    p.set_tags(node.id, {Tag.ERROR: error, Tag.STATUS: "failed"})
    (listed,) = p.list_nodes()
    assert listed.tags[Tag.CLUSTER] == "De.v_1"
    assert listed.tags[Tag.ERROR] == error
    raw = p._list()[0].labels
    assert all(not labels.key_problem(k) and not labels.value_problem(v) for k, v in raw.items())
    p.set_tags(node.id, {Tag.ERROR: ""})
    assert p.list_nodes()[0].tags[Tag.ERROR] == ""
    assert not any("--" in k for k in p._list()[0].labels)


def test_down_leaves_nothing_labelled_with_the_cluster(gce: GceFake, tmp_path: Path) -> None:
    p = provider(tmp_path)
    p.bootstrap()
    head = p.create_nodes(HEAD, 1, launch_tags(NodeKind.HEAD))
    workers = p.create_nodes(WORKER, 2, launch_tags(NodeKind.WORKER))
    p.terminate_nodes([workers[0].id])  # cache_stopped_nodes: stopped, not deleted
    assert [i.status for i in p._list() if i.name == workers[0].id] == ["TERMINATED"]
    assert len(p.list_nodes()) == 2
    p.terminate_nodes([n.id for n in head + workers])
    p.cleanup()
    assert p._list() == []
    compute_v1 = gcp_instances.compute_v1
    disks = p.gcp.compute(compute_v1.DisksClient)
    assert [d for _, s in disks.aggregated_list(project="test-project") for d in s.disks] == []
    firewalls = p.gcp.compute(compute_v1.FirewallsClient).list(project="test-project")
    assert list(firewalls) == []
    assert not p.key_path.exists()
    policy = gce.state.policy.resource()
    assert not any("rayctl-" in m for b in policy.get("bindings", []) for m in b["members"])
    assert gce.calls["iam.projects.serviceAccounts.delete"] == 1


def test_bootstrap_makes_firewall_rules_and_the_heads_own_account(
    gce: GceFake, tmp_path: Path
) -> None:
    p = provider(tmp_path)
    p.bootstrap()
    p.bootstrap()  # idempotent
    compute_v1 = gcp_instances.compute_v1
    rules = {
        f.name: f for f in p.gcp.compute(compute_v1.FirewallsClient).list(project="test-project")
    }
    internal, ssh = gcp_setup.firewall_names("test")
    tag = gcp_setup.network_tag("test")
    assert set(rules) == {internal, ssh}
    assert list(rules[internal].source_tags) == [tag] and not rules[internal].source_ranges
    assert list(rules[ssh].source_ranges) == ["10.220.1.0/24"]
    assert [(a.I_p_protocol, list(a.ports)) for a in rules[ssh].allowed] == [("tcp", ["22"])]
    (head,) = p.create_nodes(HEAD, 1, launch_tags(NodeKind.HEAD))
    (worker,) = p.create_nodes(WORKER, 1, launch_tags(NodeKind.WORKER))
    instances = p.instances
    got = {
        n.id: instances.get(project="test-project", zone=p._zone(n.id), instance=n.id)
        for n in (head, worker)
    }
    email = gcp_setup.service_account_email("test", "test-project")
    assert [a.email for a in got[head.id].service_accounts] == [email]
    assert list(got[worker.id].service_accounts) == []
    assert all(tag in i.tags.items for i in got.values())
    keys = [m.value for m in got[head.id].metadata.items if m.key == "ssh-keys"]
    assert len(keys) == 1 and keys[0].startswith("ubuntu:ssh-ed25519 ")
    roles = {b["role"] for b in gce.state.policy.resource()["bindings"]
             if f"serviceAccount:{email}" in b["members"]}  # fmt: skip
    assert roles == {*gcp_setup.HEAD_ROLES, gcp_setup.FIREWALL_ROLE}  # that one conditional


@pytest.mark.parametrize(
    ("rule", "refused"),
    [
        ("{sourceRanges: [0.0.0.0/0], allowed: [{IPProtocol: tcp, ports: ['8265']}]}", "8265"),
        ("{sourceRanges: [203.0.113.0/24], allowed: [{IPProtocol: all}]}", ALL_RAY),
        ("{sourceRanges: ['::/0'], allowed: [{IPProtocol: tcp, ports: ['10000-10001']}]}", "10001"),
        ("{sourceRanges: [0.0.0.0/0], allowed: [{IPProtocol: tcp, ports: ['8000', '443']}]}", ""),
        ("{sourceRanges: [10.0.0.0/8], allowed: [{IPProtocol: tcp, ports: ['6379']}]}", ""),
        ("{sourceRanges: [0.0.0.0/0], allowed: [{IPProtocol: udp, ports: ['6379']}]}", ""),
    ],
)
def test_extra_firewall_rules_never_open_rays_ports_to_the_internet(
    tmp_path: Path, cli: Callable[..., CliResult], rule: str, refused: str
) -> None:
    result = cli("validate", write_config(tmp_path, firewall_rules=f"[{rule}]"))
    if refused:
        assert result.code == 2
        assert f"provider.firewall_rules[0]: opens Ray's port(s) {refused} to public" in result.err
    else:
        assert result.code == 0, result.err


def test_firewall_rules_follow_the_config(gce: GceFake, tmp_path: Path) -> None:
    serve = "[{sourceRanges: [198.51.100.0/24], allowed: [{IPProtocol: tcp, ports: ['8000']}]}]"
    provider(tmp_path, firewall_rules=serve).bootstrap()
    tag = gcp_setup.network_tag("test")
    p = provider(tmp_path)
    rules = {f.name: f for f in gcp_setup.cluster_firewalls(p.gcp, "test")}
    assert list(rules[f"{tag}-extra-0"].source_ranges) == ["198.51.100.0/24"]
    p.bootstrap()  # the extra rule was dropped from the config: it goes
    assert {f.name for f in gcp_setup.cluster_firewalls(p.gcp, "test")} == set(
        gcp_setup.firewall_names("test")
    )
    assert "--node-manager-port=6380" in p.ray_start_args(p.create_nodes(
        WORKER, 1, launch_tags(NodeKind.WORKER))[0]).args  # fmt: skip


def test_a_node_type_without_a_boot_disk_is_refused(tmp_path: Path, cli) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("boot: true", "boot: false", 1))
    result = cli("validate", path)
    assert result.code == 2
    assert f"available_node_types.{HEAD}.node_config: needs a boot disk" in result.err


def test_set_tags_reads_again_when_another_writer_came_first(gce: GceFake, tmp_path: Path) -> None:
    p = provider(tmp_path)
    (node,) = p.create_nodes(WORKER, 1, launch_tags(NodeKind.WORKER))
    stale = ApiError(412, "Labels fingerprint either invalid or resource labels have changed",
                     "conditionNotMet")  # fmt: skip
    gce.fail("compute.instances.setLabels", stale)
    gets = gce.calls["compute.instances.get"]
    p.set_tags(node.id, {Tag.STATUS: "ready"})
    assert p.list_nodes()[0].tags[Tag.STATUS] == "ready"
    assert gce.calls["compute.instances.setLabels"] == 2
    assert gce.calls["compute.instances.get"] - gets == 2


def test_tagging_a_vanished_instance_is_nothing_to_do(gce: GceFake, tmp_path: Path) -> None:
    p = provider(tmp_path)
    p._config.available_node_types[WORKER].node_config["scheduling"] = {
        "provisioningModel": "SPOT", "instanceTerminationAction": "DELETE"
    }  # fmt: skip
    (node,) = p.create_nodes(WORKER, 1, launch_tags(NodeKind.WORKER))
    gce.preempt(p._zone(node.id), node.id)
    p.set_tags(node.id, {Tag.STATUS: "ready"})  # known zone, 404 from GCE
    assert p.list_nodes() == []
    p._zones.clear()
    p.set_tags(node.id, {Tag.STATUS: "ready"})  # not listed any more


def test_a_stopped_cluster_keeps_its_labels_starts_again_and_down_removes_it(
    gce: GceFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What autostop without `down` leaves (ops.autostop stops the instances, the head's
    last), read by `status` without reaching any instance, started by `up`, removed by
    `down`."""
    path = write_config(tmp_path)
    p = GCPProvider(load_config(path).config, home=tmp_path / "home")
    p.bootstrap()
    (head,) = p.create_nodes(HEAD, 1, launch_tags(NodeKind.HEAD))
    workers = sorted(n.id for n in p.create_nodes(WORKER, 2, launch_tags(NodeKind.WORKER)))
    p.set_tags(head.id, {Tag.AUTOSTOPPED: "1000"})
    p.stop_nodes(workers)
    assert [n.id for n in p.list_nodes()] == [head.id]  # only those asked
    p.stop_nodes([head.id])
    assert p.list_nodes() == []
    stopped = {n.id: n for n in p.stopped_nodes()}
    assert sorted(stopped) == sorted([head.id, *workers])
    assert {n.state for n in stopped.values()} == {NodeState.STOPPED}
    assert stopped[head.id].tags[Tag.AUTOSTOPPED] == "1000"
    assert [n.id for n in p.stopped_nodes(**{Tag.KIND: NodeKind.HEAD.value})] == [head.id]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a node was reached: {args}")

    monkeypatch.setattr(GCPProvider, "runner", refuse)
    monkeypatch.setattr(status_module, "list_ray_nodes", refuse)
    status = cluster_status(load_config(path), home=tmp_path / "home")
    assert [r.state for r in status.nodes] == ["stopped"] * 3
    assert status.autostop is not None and status.autostop.stopped_at == 1000.0

    started = p.start_nodes([head.id, workers[0]])
    assert sorted(n.id for n in started) == sorted([head.id, workers[0]])
    assert sorted(n.id for n in p.list_nodes()) == sorted([head.id, workers[0]])
    assert [n.id for n in p.stopped_nodes()] == [workers[1]]

    p.stop_nodes([head.id, workers[0]])
    report = down(load_config(path), home=tmp_path / "home")
    assert len(report.removed) == 3 and p._list() == []
