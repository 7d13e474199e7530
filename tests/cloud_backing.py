"""Cloud instances backed by real machines, for the end-to-end tests of the cloud providers
against their fakes (moto for EC2, tests/fakes/gce for Compute Engine).

A watcher thread polls the fake cloud's instances: one that is booting or running with a
private IP gets a namespace host (tests/sshhosts.py) at that IP ("the VM boots"); one that
stops or goes has its host powered off and removed. The fakes give instances addresses in
the host network's subnet, and configs use internal IPs only: a fake's public addresses are
never contacted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from rayctl.providers.base import NodeKind, Tag
from tests.sshhosts import HostNetwork, SSHHost

POLL_S = 0.2


@dataclass(frozen=True)
class Seen:
    """An instance as the fake cloud lists it."""

    id: str
    address: str | None
    up: bool  # booting or running (else stopping, stopped or going)
    tags: dict[str, str]


@dataclass
class Booted:
    instance_id: str
    host: SSHHost
    tags: dict[str, str]


class InstanceHosts:
    """A host for every instance `observe` lists as up (with `boot`); start() and stop()."""

    def __init__(
        self,
        network: HostNetwork,
        observe: Callable[[], list[Seen]],
        *,
        boot: bool = True,
        on_head: Callable[[SSHHost], None] | None = None,
    ) -> None:
        self.network = network
        self._observe = observe
        self._boot_hosts = boot
        self._on_head = on_head
        self.booted: dict[str, Booted] = {}  # instance id -> its host now
        self.ever_booted: dict[str, str] = {}  # instance id -> private IP
        self.errors: list[str] = []  # hosts the watcher could not boot or remove
        self.list_failures = 0  # a fake server may answer 500 under concurrent calls
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._boot_hosts:
            self._thread = threading.Thread(target=self._watch, name="cloud-hosts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            for booted in self.booted.values():
                self.network.remove_host(booted.host)
            self.booted.clear()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # keep watching; the test sees the error
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(POLL_S)

    def sync(self) -> None:
        """Power off the hosts of instances that stopped or went; boot hosts for new ones."""
        try:
            seen = self._observe()
        except Exception:  # the next poll asks again
            self.list_failures += 1
            return
        with self._lock:
            up = {s.id for s in seen if s.up}
            for instance_id, booted in list(self.booted.items()):
                if instance_id not in up:
                    self.network.remove_host(booted.host)
                    del self.booted[instance_id]
            for instance in seen:
                if not instance.up or not instance.address or instance.id in self.booted:
                    continue
                # An address the fake gave again: whatever held it is gone (removed above).
                self._boot(instance)

    def _boot(self, instance: Seen) -> None:
        assert instance.address
        host = self.network.add_host(
            instance.address, name="ip-" + instance.address.replace(".", "-")
        )
        if self._on_head and instance.tags.get(Tag.KIND) == NodeKind.HEAD.value:
            self._on_head(host)
        self.booted[instance.id] = Booted(instance.id, host, instance.tags)
        self.ever_booted[instance.id] = instance.address

    def hosts(self) -> dict[str, SSHHost]:
        """Instance id -> its running host."""
        with self._lock:
            return {i: b.host for i, b in self.booted.items()}
