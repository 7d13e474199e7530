"""A provider declared once (a ProviderSpec) and registered is all rayctl needs: the config
validates against its model and its own check, `rayctl schema` lists it, and `up` brings a
cluster up with it, the monitor on the head included (it loads the provider from
RAYCTL_PROVIDERS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayctl.providers import registry
from tests.conftest import wait_for
from tests.sandbox_provider import SHELF_TAG, SPEC

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox() -> Iterator[None]:
    registry.register(SPEC)
    try:
        yield
    finally:
        registry.unregister(SPEC.kind)


def test_an_unregistered_provider_is_an_unknown_type(cli, make_cluster):
    cluster = make_cluster("sbx", provider={"type": "sandbox", "shelf": "top"})
    result = cli("validate", cluster.config)
    assert result.code == 2, result.text
    assert (
        "provider.type: unknown provider type 'sandbox' "
        "(expected one of: local, ssh, aws, gcp, azure, fake)" in (result.err)
    )


def test_a_registered_provider_is_validated_listed_and_brought_up(
    sandbox, cli, make_cluster, rayctl_home: Path
):
    bad = make_cluster("sbx", provider={"type": "sandbox", "shelf": "forbidden"})
    result = cli("validate", bad.config)
    assert result.code == 2 and "provider.shelf: that shelf is off limits" in result.err
    missing = make_cluster("sbx", provider={"type": "sandbox", "shelfs": "top"})
    result = cli("validate", missing.config)
    assert result.code == 2
    assert "provider.shelfs: unknown key; did you mean 'shelf'?" in result.err

    schema = json.loads(cli("schema").out)
    variants = schema["properties"]["provider"]["discriminator"]["mapping"]
    assert sorted(variants) == ["aws", "azure", "fake", "gcp", "local", "sandbox", "ssh"]

    cluster = make_cluster(
        "sbx",
        provider={"type": "sandbox", "shelf": "top"},
        available_node_types={"head": {}, "worker": {"min_workers": 1}},
        head_node_type="head",
        max_workers=1,
    )
    checked = json.loads(cli("validate", cluster.config, "--json").out)
    assert checked["provider"] == "sandbox" and checked["head_node_type"] == "head"

    up = cli("up", cluster.config, "--json")
    assert up.code == 0, up.text
    brought = json.loads(up.out)
    assert brought["provider"] == "sandbox" and brought["workers"] == 1
    assert sorted(brought["outcomes"].values()) == ["started", "started"]
    status = wait_for(
        lambda: (s := cluster.status(cli))["monitor_running"] and s["autoscaler"] and s,
        timeout_s=60,
        what="the monitor on the head to load the sandbox provider and report",
    )
    assert [n["ray"] in ("IDLE", "RUNNING") for n in status["nodes"]] == [True, True]
    assert status["autoscaler"]["error"] is None
    config = registry.load_config(cluster.config).config
    nodes = registry.make_provider(config, home=rayctl_home).list_nodes()
    assert sorted(n.tags[SHELF_TAG] for n in nodes) == ["top", "top"]  # the provider's own

    down = cli("down", cluster.config, "--yes", "--json")
    assert down.code == 0, down.text
    assert sorted(json.loads(down.out)["removed"]) == sorted(n.id for n in nodes)
