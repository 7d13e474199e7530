"""The GCE fake, driven by the real google-cloud-compute clients (nothing mocked)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import compute_v1

from tests.fakes.gce import ApiError, ComputeClients, GceFake, compute_clients

A, B = "us-central1-a", "us-central1-b"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture
def fake() -> Iterator[GceFake]:
    with GceFake() as running:
        yield running


@pytest.fixture
def gce(fake: GceFake) -> ComputeClients:
    return compute_clients(fake.endpoint)


def _props(labels: dict[str, str], **scheduling: str) -> compute_v1.InstanceProperties:
    return compute_v1.InstanceProperties(
        machine_type="n2-standard-2",
        labels=labels,
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=IMAGE, labels=labels
                ),
            )
        ],
        scheduling=compute_v1.Scheduling(**scheduling),
    )


def _bulk_insert(
    gce: ComputeClients, fake: GceFake, zone: str, count: int, labels: dict[str, str], **kw: str
) -> compute_v1.types.Operation:
    return gce.instances.bulk_insert(
        project=fake.project,
        zone=zone,
        bulk_insert_instance_resource_resource=compute_v1.BulkInsertInstanceResource(
            count=count,
            name_pattern=f"{labels['cluster']}-####",
            instance_properties=_props(labels, **kw),
        ),
    )


def _instance(name: str, zone: str = A, **fields: object) -> compute_v1.Instance:
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/n2-standard-2",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(source_image=IMAGE),
            )
        ],
        **fields,
    )


def _names(gce: ComputeClients, fake: GceFake, zone: str = A, filter: str = "") -> list[str]:
    request = compute_v1.ListInstancesRequest(project=fake.project, zone=zone, filter=filter)
    return [i.name for i in gce.instances.list(request=request)]


def test_bulk_insert_then_list_by_label_over_pages(gce: ComputeClients, fake: GceFake) -> None:
    _bulk_insert(gce, fake, A, 5, {"cluster": "c1"}).result()
    _bulk_insert(gce, fake, A, 2, {"cluster": "c2"}).result()

    request = compute_v1.ListInstancesRequest(
        project=fake.project, zone=A, filter='labels.cluster = "c1"', max_results=2
    )
    found = list(gce.instances.list(request=request))

    assert [i.name for i in found] == [f"c1-000{n}" for n in range(1, 6)]
    assert fake.calls["compute.instances.list"] == 3  # pages of 2, 2 and 1
    assert fake.calls["compute.instances.bulkInsert"] == 2
    assert {i.status for i in found} == {"RUNNING"}
    ips = sorted(ipaddress.ip_address(i.network_interfaces[0].network_i_p) for i in found)
    assert ips[0] == ipaddress.ip_address("10.220.1.4")
    assert all(ip in ipaddress.ip_network("10.220.1.0/24") for ip in ips)
    assert not any(i.network_interfaces[0].access_configs for i in found)  # no public address
    disks = gce.disks.list(
        request=compute_v1.ListDisksRequest(
            project=fake.project, zone=A, filter='labels.cluster = "c1"'
        )
    )
    assert sorted(d.name for d in disks) == [f"c1-000{n}" for n in range(1, 6)]
    request = compute_v1.AggregatedListDisksRequest(
        project=fake.project, filter='labels.cluster = "c2"', max_results=1
    )
    by_zone = [
        (z, d.name)
        for z, scoped in gce.disks.aggregated_list(request=request)
        for d in scoped.disks
    ]
    assert by_zone == [(f"zones/{A}", "c2-0001"), (f"zones/{A}", "c2-0002")]


def test_name_pattern_continues_after_the_highest_existing_number(
    gce: ComputeClients, fake: GceFake
) -> None:
    _bulk_insert(gce, fake, A, 2, {"cluster": "c1"}).result()
    _bulk_insert(gce, fake, A, 2, {"cluster": "c1"}).result()
    assert _names(gce, fake) == ["c1-0001", "c1-0002", "c1-0003", "c1-0004"]


def test_per_instance_names_come_first_then_the_pattern(gce: ComputeClients, fake: GceFake) -> None:
    gce.instances.bulk_insert(
        project=fake.project,
        zone=A,
        bulk_insert_instance_resource_resource=compute_v1.BulkInsertInstanceResource(
            count=3,
            name_pattern="w-##",
            per_instance_properties={
                "head": compute_v1.BulkInsertInstanceResourcePerInstanceProperties()
            },
            instance_properties=_props({"cluster": "c1"}),
        ),
    ).result()
    assert _names(gce, fake) == ["head", "w-01", "w-02"]


def _region_bulk_insert(
    gce: ComputeClients, fake: GceFake, count: int, deny: tuple[str, ...] = ()
) -> compute_v1.types.Operation:
    policy = compute_v1.LocationPolicy(
        locations={f"zones/{z}": compute_v1.LocationPolicyLocation(preference="DENY") for z in deny}
    )
    return gce.region_instances.bulk_insert(
        project=fake.project,
        region="us-central1",
        bulk_insert_instance_resource_resource=compute_v1.BulkInsertInstanceResource(
            count=count,
            name_pattern="r-####",
            instance_properties=_props({"cluster": "r"}),
            location_policy=policy,
        ),
    )


def _zones_of(gce: ComputeClients, fake: GceFake) -> dict[str, list[str]]:
    request = compute_v1.AggregatedListInstancesRequest(project=fake.project)
    return {
        scope: [i.name for i in scoped.instances]
        for scope, scoped in gce.instances.aggregated_list(request=request)
        if scoped.instances
    }


def test_regional_bulk_insert_skips_denied_and_stocked_out_zones(
    gce: ComputeClients, fake: GceFake
) -> None:
    fake.stockout(B, times=1)
    fake.slow_operations(0.2)

    _region_bulk_insert(gce, fake, 2, deny=(A,)).result(timeout=30)

    assert _zones_of(gce, fake) == {"zones/us-central1-c": ["r-0001", "r-0002"]}
    assert fake.calls["compute.regionOperations.get"] >= 1  # op.result() asked the fake


def test_regional_bulk_insert_fails_whole_on_quota_or_when_every_zone_is_out(
    gce: ComputeClients, fake: GceFake
) -> None:
    fake.quota_exceeded()
    with pytest.raises(exceptions.Forbidden):
        _region_bulk_insert(gce, fake, 2).result()
    for zone in (A, B, "us-central1-c"):
        fake.stockout(zone, times=1)
    with pytest.raises(exceptions.ServiceUnavailable):
        _region_bulk_insert(gce, fake, 2).result()
    assert _zones_of(gce, fake) == {}
    _region_bulk_insert(gce, fake, 1).result()
    assert _zones_of(gce, fake) == {f"zones/{A}": ["r-0001"]}


def test_filter_terms_are_joined_by_and(gce: ComputeClients, fake: GceFake) -> None:
    for name, kind in (("head", "head"), ("w1", "worker"), ("w2", "worker")):
        labels = {"cluster": "c1", "kind": kind}
        gce.instances.insert(
            project=fake.project, zone=A, instance_resource=_instance(name, labels=labels)
        ).result()
    gce.instances.insert(
        project=fake.project,
        zone=A,
        instance_resource=_instance("other", labels={"kind": "worker"}),
    ).result()

    both = '(labels.cluster = "c1") AND (labels.kind = "worker")'
    assert _names(gce, fake, filter=both) == ["w1", "w2"]
    assert _names(gce, fake, filter='labels.cluster = "c1" labels.kind != "worker"') == ["head"]
    assert _names(gce, fake, filter="labels.cluster:*") == ["head", "w1", "w2"]
    with pytest.raises(exceptions.BadRequest, match="Invalid list filter"):
        _names(gce, fake, filter='labels.cluster = "c1" OR labels.kind = "head"')


def test_aggregated_list_keys_items_by_zone(gce: ComputeClients, fake: GceFake) -> None:
    _bulk_insert(gce, fake, A, 2, {"cluster": "c1"}).result()
    _bulk_insert(gce, fake, B, 1, {"cluster": "c1"}).result()
    _bulk_insert(gce, fake, B, 1, {"cluster": "c2"}).result()

    request = compute_v1.AggregatedListInstancesRequest(
        project=fake.project, filter='labels.cluster = "c1"', max_results=2
    )
    seen: dict[str, list[str]] = {}
    warned: set[str] = set()
    for scope, scoped in gce.instances.aggregated_list(request=request):
        seen.setdefault(scope, []).extend(i.name for i in scoped.instances)
        # a zone warns only on a page where it has nothing
        if scoped.warning.code == "NO_RESULTS_ON_PAGE" or not scoped.instances:
            assert not scoped.instances and scoped.warning.code == "NO_RESULTS_ON_PAGE"
            warned.add(scope)

    assert {k: v for k, v in seen.items() if v} == {
        f"zones/{A}": ["c1-0001", "c1-0002"],
        f"zones/{B}": ["c1-0001"],
    }
    assert "zones/us-central1-c" in warned
    assert fake.calls["compute.instances.aggregatedList"] == 2


def test_set_labels_with_a_stale_fingerprint_fails_412(gce: ComputeClients, fake: GceFake) -> None:
    gce.instances.insert(project=fake.project, zone=A, instance_resource=_instance("n1")).result()
    stale = gce.instances.get(project=fake.project, zone=A, instance="n1").label_fingerprint

    def set_labels(labels: dict[str, str], fingerprint: str) -> compute_v1.types.Operation:
        return gce.instances.set_labels(
            project=fake.project,
            zone=A,
            instance="n1",
            instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
                labels=labels, label_fingerprint=fingerprint
            ),
        )

    set_labels({"status": "ready"}, stale).result()
    with pytest.raises(exceptions.PreconditionFailed) as failed:
        set_labels({"status": "stale"}, stale)

    assert failed.value.errors[0]["reason"] == "conditionNotMet"
    now = gce.instances.get(project=fake.project, zone=A, instance="n1")
    assert dict(now.labels) == {"status": "ready"}
    assert now.label_fingerprint != stale


@pytest.mark.parametrize("with_details", [False, True])
def test_a_stockout_in_one_zone_fails_the_operation_and_not_the_other_zone(
    gce: ComputeClients, fake: GceFake, with_details: bool
) -> None:
    fake.stockout(A, with_details=with_details)

    op = _bulk_insert(gce, fake, A, 3, {"cluster": "c1"})  # accepted: the failure is in the op
    with pytest.raises(exceptions.ServiceUnavailable) as failed:
        op.result()
    _bulk_insert(gce, fake, B, 3, {"cluster": "c1"}).result()

    code = "ZONE_RESOURCE_POOL_EXHAUSTED" + ("_WITH_DETAILS" if with_details else "")
    assert [e.code for e in failed.value.errors] == [code]
    assert _names(gce, fake, A) == []  # all or nothing
    assert _names(gce, fake, B) == ["c1-0001", "c1-0002", "c1-0003"]


def test_a_quota_error_fails_the_operation_with_403(gce: ComputeClients, fake: GceFake) -> None:
    fake.quota_exceeded(times=1)

    with pytest.raises(exceptions.Forbidden, match="Quota 'CPUS' exceeded") as failed:
        gce.instances.insert(
            project=fake.project, zone=A, instance_resource=_instance("n1")
        ).result()
    gce.instances.insert(project=fake.project, zone=A, instance_resource=_instance("n2")).result()

    assert [e.code for e in failed.value.errors] == ["QUOTA_EXCEEDED"]
    assert _names(gce, fake) == ["n2"]


def test_an_api_quota_error_is_the_call_s_403(gce: ComputeClients, fake: GceFake) -> None:
    fake.fail(
        "compute.instances.list",
        ApiError(
            403, "Quota exceeded for quota metric 'Read requests'", "quotaExceeded", "usageLimits"
        ),
    )
    with pytest.raises(exceptions.Forbidden) as failed:
        _names(gce, fake)
    assert failed.value.errors[0] | {"message": ""} == {
        "message": "",
        "domain": "usageLimits",
        "reason": "quotaExceeded",
    }


def test_rate_limited_calls_answer_429_until_the_limit_lifts(
    gce: ComputeClients, fake: GceFake
) -> None:
    fake.rate_limit(2)

    for _ in range(2):
        with pytest.raises(exceptions.TooManyRequests) as limited:
            _names(gce, fake)
        assert limited.value.errors[0]["reason"] == "rateLimitExceeded"
    assert _names(gce, fake) == []
    assert fake.calls["compute.instances.list"] == 3


def test_a_machine_type_the_zone_lacks_is_refused_there_only(
    gce: ComputeClients, fake: GceFake
) -> None:
    fake.machine_type_unavailable(A, "n2-standard-2")
    with pytest.raises(exceptions.BadRequest, match="does not exist in zone"):
        _bulk_insert(gce, fake, A, 1, {"cluster": "c1"})
    _bulk_insert(gce, fake, B, 1, {"cluster": "c1"}).result()


def test_insert_checks_what_gce_checks(gce: ComputeClients, fake: GceFake) -> None:
    def insert(instance: compute_v1.Instance) -> None:
        gce.instances.insert(project=fake.project, zone=A, instance_resource=instance).result()

    insert(_instance("n1"))
    with pytest.raises(exceptions.Conflict):
        insert(_instance("n1"))
    bare = _instance("n2")
    bare.machine_type = "n2-standard-2"  # insert wants zones/ZONE/machineTypes/TYPE
    with pytest.raises(exceptions.BadRequest, match="Must be a URL"):
        insert(bare)
    with pytest.raises(exceptions.BadRequest, match="labels"):
        insert(_instance("n3", labels={"Node-Type": "head.default"}))
    with pytest.raises(exceptions.NotFound):
        gce.instances.get(project="other-project", zone=A, instance="n1")
    assert _names(gce, fake) == ["n1"]


def test_delete_removes_the_instance_and_its_auto_delete_disk(
    gce: ComputeClients, fake: GceFake
) -> None:
    kept = compute_v1.AttachedDisk(
        auto_delete=False,
        initialize_params=compute_v1.AttachedDiskInitializeParams(
            disk_name="data", disk_size_gb=50
        ),
    )
    n1 = _instance("n1")
    n1.disks.append(kept)
    gce.instances.insert(project=fake.project, zone=A, instance_resource=n1).result()
    ip = gce.instances.get(project=fake.project, zone=A, instance="n1").network_interfaces[0]

    gce.instances.delete(project=fake.project, zone=A, instance="n1").result()

    with pytest.raises(exceptions.NotFound):
        gce.instances.get(project=fake.project, zone=A, instance="n1")
    with pytest.raises(exceptions.NotFound):
        gce.disks.get(project=fake.project, zone=A, disk="n1")
    data = gce.disks.get(project=fake.project, zone=A, disk="data")
    assert list(data.users) == []
    with pytest.raises(exceptions.Conflict, match="disks/data' already exists"):
        gce.instances.insert(project=fake.project, zone=A, instance_resource=n1).result()
    gce.disks.delete(project=fake.project, zone=A, disk="data").result()
    assert list(gce.disks.list(project=fake.project, zone=A)) == []
    with pytest.raises(exceptions.NotFound):
        gce.instances.delete(project=fake.project, zone=A, instance="n1")
    # the freed address goes to the next instance
    gce.instances.insert(project=fake.project, zone=A, instance_resource=_instance("n2")).result()
    n2 = gce.instances.get(project=fake.project, zone=A, instance="n2")
    assert n2.network_interfaces[0].network_i_p == ip.network_i_p


def test_a_disk_in_use_cannot_be_deleted(gce: ComputeClients, fake: GceFake) -> None:
    gce.instances.insert(project=fake.project, zone=A, instance_resource=_instance("n1")).result()
    with pytest.raises(exceptions.BadRequest) as failed:
        gce.disks.delete(project=fake.project, zone=A, disk="n1")
    assert failed.value.errors[0]["reason"] == "resourceInUseByAnotherResource"


def test_preempted_spot_instances_end_terminated_or_deleted(
    gce: ComputeClients, fake: GceFake
) -> None:
    spot = {"provisioning_model": "SPOT"}
    _bulk_insert(gce, fake, A, 1, {"cluster": "del"}, **spot, instance_termination_action="DELETE")
    _bulk_insert(gce, fake, A, 1, {"cluster": "stop"}, **spot, instance_termination_action="STOP")
    _bulk_insert(gce, fake, A, 1, {"cluster": "std"}).result()

    fake.preempt(A, "del-0001")
    fake.preempt(A, "stop-0001")
    with pytest.raises(ValueError, match="not a spot"):
        fake.preempt(A, "std-0001")

    assert _names(gce, fake) == ["std-0001", "stop-0001"]
    assert (
        gce.instances.get(project=fake.project, zone=A, instance="stop-0001").status == "TERMINATED"
    )
    with pytest.raises(exceptions.NotFound):
        gce.disks.get(project=fake.project, zone=A, disk="del-0001")


def test_a_preempted_instance_is_stopping_until_gce_finishes_with_it() -> None:
    now = 0.0
    with GceFake(operation_seconds=30, clock=lambda: now) as fake:
        gce = compute_clients(fake.endpoint)
        spot = {"provisioning_model": "SPOT", "instance_termination_action": "DELETE"}
        _bulk_insert(gce, fake, A, 1, {"cluster": "c1"}, **spot)

        fake.preempt(A, "c1-0001")

        assert (
            gce.instances.get(project=fake.project, zone=A, instance="c1-0001").status == "STOPPING"
        )
        now = 30.0
        assert _names(gce, fake) == []


def test_slow_operations_are_polled_through_the_fake(gce: ComputeClients, fake: GceFake) -> None:
    fake.slow_operations(0.5)

    op = gce.instances.insert(project=fake.project, zone=A, instance_resource=_instance("n1"))
    assert op.status == compute_v1.Operation.Status.PENDING
    op.result(timeout=30)

    assert op.done()
    assert fake.calls["compute.zoneOperations.get"] >= 1  # op.result() asked the fake


def test_operation_wait_returns_once_done(gce: ComputeClients, fake: GceFake) -> None:
    fake.slow_operations(0.3)
    op = gce.instances.insert(project=fake.project, zone=A, instance_resource=_instance("n1"))

    waited = gce.zone_operations.wait(project=fake.project, zone=A, operation=op.name)

    assert waited.status == compute_v1.Operation.Status.DONE
    assert fake.calls["compute.zoneOperations.wait"] == 1


def test_instances_boot_stop_and_start_through_gce_states() -> None:
    now = 0.0
    with GceFake(boot_seconds=10, clock=lambda: now) as fake:
        gce = compute_clients(fake.endpoint)
        gce.instances.insert(project=fake.project, zone=A, instance_resource=_instance("n1"))

        def status() -> str:
            return gce.instances.get(project=fake.project, zone=A, instance="n1").status

        assert status() == "PROVISIONING"
        now = 5.0
        assert status() == "STAGING"
        now = 10.0
        assert status() == "RUNNING"
        gce.instances.stop(project=fake.project, zone=A, instance="n1").result()
        assert status() == "TERMINATED"
        gce.instances.start(project=fake.project, zone=A, instance="n1").result()
        assert status() == "STAGING"
        now = 20.0
        assert status() == "RUNNING"


def test_a_public_address_only_when_asked_and_from_a_documentation_range(
    gce: ComputeClients, fake: GceFake
) -> None:
    nic = compute_v1.NetworkInterface(
        access_configs=[compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
    )
    gce.instances.insert(
        project=fake.project, zone=A, instance_resource=_instance("pub", network_interfaces=[nic])
    ).result()
    gce.instances.insert(project=fake.project, zone=A, instance_resource=_instance("priv")).result()

    pub = gce.instances.get(project=fake.project, zone=A, instance="pub").network_interfaces[0]
    priv = gce.instances.get(project=fake.project, zone=A, instance="priv").network_interfaces[0]
    nat_ip = ipaddress.ip_address(pub.access_configs[0].nat_i_p)
    assert nat_ip in ipaddress.ip_network("203.0.113.0/24")
    assert list(priv.access_configs) == []


def test_firewalls_insert_get_list_delete(gce: ComputeClients, fake: GceFake) -> None:
    rule = compute_v1.Firewall(
        name="c1-internal",
        allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])],
        source_ranges=["0.0.0.0/0"],
        target_tags=["c1"],
    )
    gce.firewalls.insert(project=fake.project, firewall_resource=rule).result()
    with pytest.raises(exceptions.Conflict):
        gce.firewalls.insert(project=fake.project, firewall_resource=rule)

    got = gce.firewalls.get(project=fake.project, firewall="c1-internal")
    assert list(got.target_tags) == ["c1"]
    assert got.allowed[0].ports == ["22"]
    assert [f.name for f in gce.firewalls.list(project=fake.project)] == ["c1-internal"]
    gce.firewalls.delete(project=fake.project, firewall="c1-internal").result()
    assert list(gce.firewalls.list(project=fake.project)) == []
    assert fake.calls["compute.firewalls.insert"] == 2


def test_the_fake_listens_where_it_is_told() -> None:
    with GceFake(address="127.0.0.5") as fake:  # any 127/8 address is loopback on Linux
        assert fake.endpoint.startswith("http://127.0.0.5:")
        assert (
            compute_clients(fake.endpoint).projects.get(project=fake.project).name == fake.project
        )


def test_project_get(gce: ComputeClients, fake: GceFake) -> None:
    assert gce.projects.get(project=fake.project).name == fake.project
    with pytest.raises(exceptions.NotFound):
        gce.projects.get(project="someone-elses")


@pytest.mark.parametrize("version", ["v1", "v3"])
def test_test_iam_permissions_answers_the_granted_subset(version: str) -> None:
    with GceFake(granted_permissions={"compute.instances.create"}) as fake:
        session = AuthorizedSession(AnonymousCredentials())
        url = f"{fake.endpoint}/{version}/projects/{fake.project}:testIamPermissions"
        asked = ["compute.instances.create", "iam.serviceAccounts.create"]

        answer = session.post(url, json={"permissions": asked})

        assert answer.json() == {"permissions": ["compute.instances.create"]}
        assert session.post(url, json={"permissions": asked[1:]}).json() == {}


def test_service_accounts_and_project_policy(fake: GceFake) -> None:
    session = AuthorizedSession(AnonymousCredentials())
    accounts = f"{fake.endpoint}/v1/projects/{fake.project}/serviceAccounts"
    created = session.post(accounts, json={"accountId": "rayctl-head-c1"}).json()
    email = f"rayctl-head-c1@{fake.project}.iam.gserviceaccount.com"
    assert created["email"] == email
    assert session.post(accounts, json={"accountId": "rayctl-head-c1"}).status_code == 409
    assert session.get(f"{accounts}/{email}").json()["email"] == email

    crm = f"{fake.endpoint}/v1/projects/{fake.project}"
    policy = session.post(f"{crm}:getIamPolicy", json={}).json()
    policy["bindings"] = [{"role": "roles/compute.admin", "members": [f"serviceAccount:{email}"]}]
    assert session.post(f"{crm}:setIamPolicy", json={"policy": policy}).status_code == 200
    stale = session.post(f"{crm}:setIamPolicy", json={"policy": policy})
    assert stale.status_code == 409  # the etag moved on
    assert session.post(f"{crm}:getIamPolicy", json={}).json()["bindings"] == policy["bindings"]

    assert session.delete(f"{accounts}/{email}").status_code == 200
    gone = session.get(f"{accounts}/{email}")
    assert gone.status_code == 404
    assert gone.json()["error"]["errors"][0]["reason"] == "notFound"
