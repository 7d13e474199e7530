"""The fake's resources as typed records, each rendering itself as Compute Engine's JSON."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

# GCE's selfLinks and resource references are absolute URLs to the real API. The fake returns
# them as GCE does; clients must address the fake through their api_endpoint, never these.
COMPUTE = "https://www.googleapis.com/compute/v1/"


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def fingerprint(value: object) -> str:
    """An opaque fingerprint that changes with the value, as GCE's labelFingerprint does."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


@dataclass
class Labelled:
    labels: dict[str, str]

    @property
    def label_fingerprint(self) -> str:
        return fingerprint(self.labels)


@dataclass
class AttachedDisk:
    disk: str  # the disk's name in the instance's zone
    device_name: str
    boot: bool
    auto_delete: bool
    mode: str = "READ_WRITE"


@dataclass
class Instance(Labelled):
    id: str
    project: str
    zone: str
    name: str
    machine_type: str  # the bare name, e.g. n2-standard-2
    status: str
    network_ip: str
    nat_ip: str | None
    disks: list[AttachedDisk]
    # Fields the fake stores and returns as given (metadata, tags, serviceAccounts,
    # scheduling, guestAccelerators, description, network and subnetwork, ...).
    passthrough: dict
    created: str = field(default_factory=timestamp)

    @property
    def zone_url(self) -> str:
        return f"{COMPUTE}projects/{self.project}/zones/{self.zone}"

    @property
    def self_link(self) -> str:
        return f"{self.zone_url}/instances/{self.name}"

    @property
    def scheduling(self) -> dict:
        return self.passthrough.get("scheduling", {})

    def resource(self) -> dict:
        nic: dict = {
            "kind": "compute#networkInterface",
            "name": "nic0",
            "network": self.passthrough.get("network", self._global("networks/default")),
            "networkIP": self.network_ip,
            "stackType": "IPV4_ONLY",
        }
        if "subnetwork" in self.passthrough:
            nic["subnetwork"] = self.passthrough["subnetwork"]
        if self.nat_ip:
            nic["accessConfigs"] = [
                {
                    "kind": "compute#accessConfig",
                    "type": "ONE_TO_ONE_NAT",
                    "name": "External NAT",
                    "natIP": self.nat_ip,
                    "networkTier": "PREMIUM",
                }
            ]
        rest = {k: v for k, v in self.passthrough.items() if k not in ("network", "subnetwork")}
        return {
            **rest,
            "kind": "compute#instance",
            "id": self.id,
            "creationTimestamp": self.created,
            "name": self.name,
            "zone": self.zone_url,
            "machineType": f"{self.zone_url}/machineTypes/{self.machine_type}",
            "status": self.status,
            "networkInterfaces": [nic],
            "disks": [
                {
                    "kind": "compute#attachedDisk",
                    "type": "PERSISTENT",
                    "mode": d.mode,
                    "source": f"{self.zone_url}/disks/{d.disk}",
                    "deviceName": d.device_name,
                    "index": i,
                    "boot": d.boot,
                    "autoDelete": d.auto_delete,
                    "interface": "SCSI",
                }
                for i, d in enumerate(self.disks)
            ],
            "labels": self.labels,
            "labelFingerprint": self.label_fingerprint,
            "selfLink": self.self_link,
        }

    def _global(self, path: str) -> str:
        return f"{COMPUTE}projects/{self.project}/global/{path}"


@dataclass
class Disk(Labelled):
    id: str
    project: str
    zone: str
    name: str
    size_gb: int
    disk_type: str  # the bare name, e.g. pd-balanced
    source_image: str | None
    users: list[str]  # selfLinks of the instances it is attached to
    created: str = field(default_factory=timestamp)

    def resource(self) -> dict:
        zone_url = f"{COMPUTE}projects/{self.project}/zones/{self.zone}"
        body = {
            "kind": "compute#disk",
            "id": self.id,
            "creationTimestamp": self.created,
            "name": self.name,
            "sizeGb": str(self.size_gb),
            "zone": zone_url,
            "status": "READY",
            "type": f"{zone_url}/diskTypes/{self.disk_type}",
            "labels": self.labels,
            "labelFingerprint": self.label_fingerprint,
            "selfLink": f"{zone_url}/disks/{self.name}",
        }
        if self.source_image:
            body["sourceImage"] = self.source_image
        if self.users:
            body["users"] = list(self.users)
        return body


@dataclass
class Firewall:
    id: str
    project: str
    name: str
    spec: dict  # network, direction, priority, allowed/denied, sourceRanges, targetTags, ...
    created: str = field(default_factory=timestamp)

    def resource(self) -> dict:
        return {
            "network": f"{COMPUTE}projects/{self.project}/global/networks/default",
            "direction": "INGRESS",
            "priority": 1000,
            "disabled": False,
            **self.spec,
            "kind": "compute#firewall",
            "id": self.id,
            "creationTimestamp": self.created,
            "name": self.name,
            "selfLink": f"{COMPUTE}projects/{self.project}/global/firewalls/{self.name}",
        }


@dataclass
class Operation:
    id: str
    project: str
    name: str
    scope: str  # zones/ZONE, regions/REGION or global
    operation_type: str  # insert, bulkInsert, delete, setLabels, stop, start, ...
    target_link: str
    target_id: str | None
    status: str = "PENDING"
    failure: dict | None = None  # OperationError.fields() once it failed
    metadata: dict = field(default_factory=dict)  # e.g. instancesBulkInsertOperationMetadata
    inserted: str = field(default_factory=timestamp)
    ended: str | None = None

    @property
    def scope_url(self) -> str:
        return f"{COMPUTE}projects/{self.project}/{self.scope}"

    def resource(self) -> dict:
        body = {
            "kind": "compute#operation",
            "id": self.id,
            "name": self.name,
            "operationType": self.operation_type,
            "targetLink": self.target_link,
            "status": self.status,
            "user": "fake@example.com",
            "progress": 100 if self.status == "DONE" else 0,
            "insertTime": self.inserted,
            "startTime": self.inserted,
            "selfLink": f"{self.scope_url}/operations/{self.name}",
            **self.metadata,
        }
        if self.scope != "global":  # a zonal operation names its zone, a regional its region
            body[self.scope.split("/")[0].removesuffix("s")] = self.scope_url
        if self.target_id:
            body["targetId"] = self.target_id
        if self.ended:
            body["endTime"] = self.ended
        return {**body, **(self.failure or {})}


@dataclass
class ServiceAccount:
    project: str
    account_id: str
    unique_id: str
    display_name: str
    description: str

    @property
    def email(self) -> str:
        return f"{self.account_id}@{self.project}.iam.gserviceaccount.com"

    def resource(self) -> dict:
        return {
            "name": f"projects/{self.project}/serviceAccounts/{self.email}",
            "projectId": self.project,
            "uniqueId": self.unique_id,
            "email": self.email,
            "displayName": self.display_name,
            "description": self.description,
            "etag": fingerprint(self.display_name),
            "oauth2ClientId": self.unique_id,
        }
