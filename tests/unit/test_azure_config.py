"""The azure provider's `provider:` section and node_config (Ray's azure_arm_parameters):
what validates, what is refused with its file:line:col and key path, and `up` refusing what
rayctl accepts but does not do (Spot VMs deallocated on eviction) before anything exists."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rayctl.providers.azure.config import arm_parameters, zone_list
from rayctl.providers.registry import load_config

HEAD = "available_node_types.ray.head.default.node_config.azure_arm_parameters"


def write(tmp_path: Path, provider: str, params: str = "") -> Path:
    text = f"""\
        cluster_name: az
        provider: {{type: azure, location: westus2, resource_group: rg{provider}}}
        available_node_types:
          ray.head.default:
            node_config:
              azure_arm_parameters: {{vmSize: Standard_D2s_v3, imagePublisher: Canonical,
                imageOffer: ubuntu-24_04-lts, imageSku: server{params}}}
        """
    path = tmp_path / "cluster.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_defaults_are_rays_node_types_with_an_ubuntu_image(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("provider: {type: azure, location: westus2, resource_group: rg}\n")
    config = load_config(path).config
    assert set(config.available_node_types) == {"ray.head.default", "ray.worker.default"}
    params = arm_parameters(config.head_type.node_config)
    assert (params.vmSize, params.imageOffer, params.priority) == (
        "Standard_D2s_v3", "ubuntu-24_04-lts", "Regular")  # fmt: skip
    assert config.auth.ssh_user == "ubuntu"


def test_spot_parameters_are_read_as_ray_gives_them(tmp_path: Path) -> None:
    path = write(tmp_path, "", ", priority: Spot, billingProfile: {maxPrice: -1}, osDiskSize: 64")
    params = arm_parameters(load_config(path).config.head_type.node_config)
    assert params.spot and params.evictionPolicy == "Delete"
    assert params.billingProfile is not None and params.billingProfile.maxPrice == -1
    assert params.osDiskSize == 64


@pytest.mark.parametrize(
    ("value", "zones"),
    [("1,2,3", ["1", "2", "3"]), (" 3, 1,3 ", ["3", "1"]), ("auto", []), ("None", []),
     (None, [])],
)  # fmt: skip
def test_zone_lists_keep_the_given_order(value: str | None, zones: list[str]) -> None:
    assert zone_list(value) == zones


@pytest.mark.parametrize(
    ("provider", "params", "expected"),
    [
        (", availability_zone: 'one'", "",
         "provider.availability_zone: 'one' is not a zone list"),
        ("", ", availability_zone: '1,b'",
         f"{HEAD}.availability_zone: '1,b' is not a zone list"),
        (", msi_name: mine", "",
         "provider: give msi_name and msi_resource_group together, or neither"),
        (", subnet_mask: 10.0.0.0/33", "", "provider.subnet_mask: not an IPv4 CIDR block"),
        (", ssh_source_cidrs: [anywhere]", "", "provider.ssh_source_cidrs[0]: not a CIDR block"),
        ("", ", osDiskSizeGB: 30",
         f"{HEAD}.osDiskSizeGB: not a parameter of Ray's VM template; did you mean 'osDiskSize'?"),
        ("", ", vmName: x", f"{HEAD}.vmName: rayctl names VMs itself"),
        ("", ", subnet: s", f"{HEAD}.subnet: rayctl creates the cluster's subnet"),
        ("", ", priority: Cheap", f"{HEAD}.priority: Input should be 'Regular', 'Spot' or 'Low'"),
        ("", ", osDiskSize: 0", f"{HEAD}.osDiskSize: Input should be greater than 0"),
    ],
)  # fmt: skip
def test_mistakes_are_named_with_their_place(
    tmp_path: Path, cli, provider: str, params: str, expected: str
) -> None:
    result = cli("validate", write(tmp_path, provider, params))
    assert result.code == 2, result.err
    assert expected in result.err


def test_an_image_is_needed(tmp_path: Path, cli) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "provider: {type: azure, location: westus2, resource_group: rg}\n"
        "available_node_types:\n"
        "  ray.head.default: {node_config: {azure_arm_parameters: {vmSize: S, imageOffer: o}}}\n"
    )
    result = cli("validate", path)
    assert result.code == 2
    assert f"{HEAD}: needs an image: imagePublisher, imageOffer and imageSku (or imageId)" in (
        result.err
    )
    path.write_text(path.read_text().replace("imageOffer: o", "imageId: /subscriptions/x/i"))
    assert cli("validate", path).code == 0


def test_missing_location_and_group_are_named(tmp_path: Path, cli) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("provider: {type: azure}\n")
    result = cli("validate", path)
    assert result.code == 2
    assert "c.yaml:1:1: provider: missing required key 'location'" in result.err
    assert "c.yaml:1:1: provider: missing required key 'resource_group'" in result.err


def test_spot_deallocate_is_refused_by_up_before_anything(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYCTL_HOME", str(tmp_path / "home"))
    path = write(tmp_path, "", ", priority: Spot, evictionPolicy: Deallocate")
    validated = cli("validate", path)
    assert validated.code == 0
    assert f"{HEAD}.evictionPolicy: Spot VMs are launched with evictionPolicy Delete" in (
        validated.err
    )
    upped = cli("up", path, "--yes")
    assert upped.code == 2
    assert upped.err.splitlines()[-1].endswith(
        f"{HEAD}.evictionPolicy: Spot VMs are launched with evictionPolicy Delete (an evicted "
        "VM is gone, its disk too); deallocated Spot VMs are not reused"
    )
    assert not (tmp_path / "home").exists()


def test_rays_unique_id_is_ignored_with_a_warning(tmp_path: Path, cli) -> None:
    result = cli("validate", write(tmp_path, ", unique_id: RAY1"))
    assert result.code == 0
    assert "provider.unique_id: ignored: rayctl names the cluster's resources" in result.err
