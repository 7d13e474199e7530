"""Valid configs: the shipped examples validate, defaults are filled, provider defaults merge
deeply, setup commands follow Ray's rule, and the node hashes change for the right reasons."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from rayctl.cli.app import run
from rayctl.config import ClusterConfig, NodeTypeConfig
from rayctl.config.defaults import deep_merge
from rayctl.config.hashes import launch_hash, start_hash
from rayctl.providers.local.memory import fair_share, machine_memory_bytes
from rayctl.providers.registry import fill_defaults, load_config
from rayctl.runtime.bootstrap import NodeSpec
from rayctl.runtime.nodes import NodeKind

REPO = Path(__file__).resolve().parents[2]
CLUSTER_CONFIGS = sorted((REPO / "cluster-configs").glob("*.yaml"))


def local_share(max_workers: int = 2) -> dict[str, float]:
    """The memory and object store a local node gets when its type names neither."""
    memory, store = fair_share(machine_memory_bytes(), max_workers)
    return {"memory": memory, "object_store_memory": store}


def write(directory: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_dict(directory: Path, raw: dict[str, Any], name: str = "cluster.yaml") -> ClusterConfig:
    path = directory / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_config(path).config


@pytest.fixture
def rayctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "rayctl-home"
    home.mkdir()
    monkeypatch.setenv("RAYCTL_HOME", str(home))
    return home


# --- shipped configs -------------------------------------------------------------------


def test_there_are_shipped_configs() -> None:
    assert [p.name for p in CLUSTER_CONFIGS].count("local.yaml") == 1


@pytest.mark.parametrize("path", CLUSTER_CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(
    path: Path,
    rayctl_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"  # where configs' `~/.ssh/...` keys are looked for
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("a key")
    monkeypatch.setenv("HOME", str(home))
    assert run(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith(f"{path}: valid. Cluster '")
    assert list(rayctl_home.iterdir()) == []


def test_local_yaml_summary(rayctl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "cluster-configs" / "local.yaml"
    assert run(["validate", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: valid. Cluster 'local' on local: head ray.head.default, "
        "workers ray.worker.cpu (1..4), max_workers 4.\n"
    )


# --- defaults --------------------------------------------------------------------------


def test_minimal_local_config_gets_every_default(tmp_path: Path) -> None:
    path = write(tmp_path, "provider:\n  type: local\n")
    loaded = load_config(path)
    c = loaded.config
    assert loaded.path == path.resolve()
    assert loaded.name == "default"
    assert c.cluster_name == "default"
    assert c.max_workers == 2
    assert c.upscaling_speed == 1.0
    assert c.idle_timeout_minutes == 5
    assert c.head_node_type == "ray.head.default"
    assert c.available_node_types == {
        "ray.head.default": NodeTypeConfig(resources={"CPU": 1, **local_share()}),
        "ray.worker.default": NodeTypeConfig(resources={"CPU": 1, **local_share()}),
    }
    for node_type in c.available_node_types.values():
        assert node_type.min_workers == 0
        assert node_type.max_workers is None
        assert node_type.node_config == {}
        assert node_type.labels == {}
        assert node_type.worker_setup_commands is None
    assert c.type_max_workers("ray.head.default") == 0
    assert c.type_max_workers("ray.worker.default") == 2
    assert list(c.worker_types()) == ["ray.worker.default"]
    assert c.setup_commands == []
    assert c.file_mounts == {}
    assert c.docker.container_name is None
    assert c.rayctl.runtime.python is None


def test_local_node_type_without_cpu_gets_one_cpu(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        provider:
          type: local
        available_node_types:
          head: {}
          gpu:
            resources: {GPU: 1}
          big:
            resources: {CPU: 4, memory: 1000}
        head_node_type: head
        """,
    )
    types = load_config(path).config.available_node_types
    share = local_share()
    assert types["head"].resources == {"CPU": 1, **share}
    assert types["gpu"].resources == {"CPU": 1, "GPU": 1, **share}
    assert types["big"].resources == {**share, "CPU": 4, "memory": 1000}
    assert {name: t.min_workers for name, t in types.items()} == {"head": 0, "gpu": 0, "big": 0}


def test_given_values_override_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        cluster_name: mine
        max_workers: 7
        upscaling_speed: 2.5
        idle_timeout_minutes: 0
        provider:
          type: local
        """,
    )
    c = load_config(path).config
    assert (c.cluster_name, c.max_workers, c.upscaling_speed, c.idle_timeout_minutes) == (
        "mine",
        7,
        2.5,
        0,
    )


def test_cluster_name_argument_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster_name: from-file\nprovider:\n  type: local\n")
    loaded = load_config(path, cluster_name="x")
    assert loaded.name == "x"
    assert loaded.config.cluster_name == "x"
    assert load_config(path).name == "from-file"


# --- deep merge ------------------------------------------------------------------------


def test_deep_merge_merges_nested_dicts_key_by_key() -> None:
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "x": [1, 2], "y": 1}
    override = {"a": {"c": {"e": 30, "f": 40}, "g": 5}, "x": [3], "z": {"k": 1}}
    merged = deep_merge(base, override)
    assert merged == {
        "a": {"b": 1, "c": {"d": 2, "e": 30, "f": 40}, "g": 5},
        "x": [3],
        "y": 1,
        "z": {"k": 1},
    }
    # Neither input is modified, and the result shares no mutable parts with them.
    assert base == {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "x": [1, 2], "y": 1}
    assert override == {"a": {"c": {"e": 30, "f": 40}, "g": 5}, "x": [3], "z": {"k": 1}}
    merged["z"]["k"] = 99
    merged["a"]["c"]["d"] = 99
    assert override["z"] == {"k": 1}
    assert base["a"]["c"]["d"] == 2


def test_deep_merge_non_dict_replaces_dict_and_back() -> None:
    assert deep_merge({"a": {"b": 1}}, {"a": None}) == {"a": None}
    assert deep_merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert deep_merge({}, {}) == {}


def test_fill_defaults_given_node_types_replace_the_default_set() -> None:
    raw = {"provider": {"type": "local"}, "available_node_types": {"h": {"min_workers": 0}}}
    filled = fill_defaults(raw)
    # The default head_node_type names a default type, so it goes with the default set.
    assert filled == {
        "provider": {"type": "local"},
        "available_node_types": {"h": {"min_workers": 0, "resources": {"CPU": 1}}},
    }
    assert raw == {"provider": {"type": "local"}, "available_node_types": {"h": {"min_workers": 0}}}


def test_fill_defaults_leaves_unknown_providers_alone() -> None:
    raw = {"provider": {"type": "nowhere"}, "max_workers": 1}
    assert fill_defaults(raw) == raw
    assert fill_defaults({"max_workers": 1}) == {"max_workers": 1}


def test_user_node_types_replace_default_node_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        provider:
          type: local
        available_node_types:
          head:
            resources: {CPU: 2}
          ray.head.default:
            min_workers: 1
        head_node_type: head
        """,
    )
    c = load_config(path).config
    assert list(c.available_node_types) == ["head", "ray.head.default"]
    assert "ray.worker.default" not in c.available_node_types
    # A user's entry that shares a default's name is still merged only with the per-type
    # defaults, not with the default entry of that name.
    assert c.available_node_types["ray.head.default"] == NodeTypeConfig(
        resources={"CPU": 1, **local_share()}, min_workers=1
    )
    assert c.available_node_types["head"].resources == {"CPU": 2, **local_share()}


# --- setup commands --------------------------------------------------------------------

SETUP = """\
provider:
  type: local
setup_commands: [common]
head_setup_commands: [head-only]
worker_setup_commands: [worker-global]
available_node_types:
  head:
    worker_setup_commands: [never-on-head]
  plain: {}
  own:
    worker_setup_commands: [own-1, own-2]
  none:
    worker_setup_commands: []
head_node_type: head
"""


def test_setup_commands_follow_rays_rule(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, SETUP)).config
    assert c.setup_commands_for("head", head=True) == ["common", "head-only"]
    assert c.setup_commands_for("plain", head=False) == ["common", "worker-global"]
    assert c.setup_commands_for("own", head=False) == ["common", "own-1", "own-2"]
    assert c.setup_commands_for("none", head=False) == ["common"]
    # The head's type may also launch workers; those get the type's own list.
    assert c.setup_commands_for("head", head=False) == ["common", "never-on-head"]


def test_setup_commands_default_to_empty(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, "provider:\n  type: local\n")).config
    assert c.setup_commands_for("ray.head.default", head=True) == []
    assert c.setup_commands_for("ray.worker.default", head=False) == []


# --- file mounts -----------------------------------------------------------------------


def test_file_mount_sources_become_absolute_relative_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "configs"
    (config_dir / "code").mkdir(parents=True)
    (config_dir / "code" / "main.py").write_text("print(1)\n")
    (tmp_path / "shared.txt").write_text("shared\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the config file, not the working directory
    path = write(
        config_dir,
        f"""\
        provider:
          type: local
        file_mounts:
          ~/code: code
          ~/main.py: ./code/main.py
          ~/shared.txt: ../shared.txt
          ~/abs: {config_dir / "code"}
        """,
    )
    mounts = load_config(path).config.file_mounts
    real = config_dir.resolve()
    assert mounts == {
        "~/code": str(real / "code"),
        "~/main.py": str(real / "code" / "main.py"),
        "~/shared.txt": str(tmp_path.resolve() / "shared.txt"),
        "~/abs": str(real / "code"),
    }


# --- hashes ----------------------------------------------------------------------------

HEX16 = re.compile(r"^[0-9a-f]{16}$")


def base_raw() -> dict[str, Any]:
    return {
        "provider": {"type": "local"},
        "setup_commands": ["pip list"],
        "head_setup_commands": ["echo head"],
        "worker_setup_commands": ["echo worker"],
        "head_start_ray_commands": ["ray start --block --head"],
        "worker_start_ray_commands": ["ray start --block --address=$RAY_HEAD_IP:6379"],
        "available_node_types": {
            "head": {"resources": {"CPU": 1}, "node_config": {"size": "s"}},
            "w": {"resources": {"CPU": 2}, "node_config": {"size": "m"}, "labels": {"a": "b"}},
            "other": {"resources": {"CPU": 1}, "node_config": {"size": "l"}},
        },
        "head_node_type": "head",
    }


def hashes(c: ClusterConfig) -> dict[str, str]:
    """Every hash of every node type, as both head and worker where it applies."""
    result = {}
    for name in c.available_node_types:
        result[f"launch:{name}"] = launch_hash(c, name)
        for head in (True, False):
            role = "head" if head else "worker"
            kind = NodeKind.HEAD if head else NodeKind.WORKER
            result[f"runtime:{name}:{role}"] = NodeSpec.of(c, name, kind).runtime_hash
            result[f"start:{name}:{role}"] = start_hash(c, name, head=head)
    return result


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert before.keys() == after.keys()
    return {key for key in before if before[key] != after[key]}


def test_hashes_are_short_hex_and_stable(tmp_path: Path) -> None:
    a = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    b = hashes(load_dict(tmp_path, base_raw(), "b.yaml"))
    assert a == b
    assert all(HEX16.match(value) for value in a.values())
    # Distinct inputs give distinct hashes.
    assert a["launch:head"] != a["launch:w"]
    assert a["start:head:head"] != a["start:head:worker"]


def test_hashes_ignore_mapping_key_order(tmp_path: Path) -> None:
    raw = base_raw()
    raw["available_node_types"]["w"]["node_config"] = {"x": 1, "y": {"p": 1, "q": 2}}
    reordered = base_raw()
    reordered["available_node_types"]["w"]["node_config"] = {"y": {"q": 2, "p": 1}, "x": 1}
    assert hashes(load_dict(tmp_path, raw, "a.yaml")) == hashes(
        load_dict(tmp_path, reordered, "b.yaml")
    )


def test_node_config_change_changes_only_that_types_launch_hash(tmp_path: Path) -> None:
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["available_node_types"]["w"]["node_config"]["size"] = "xl"
    after = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after) == {"launch:w"}


def test_auth_change_changes_every_launch_hash(tmp_path: Path) -> None:
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["auth"] = {"ssh_user": "someone"}
    after = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after) == {"launch:head", "launch:w", "launch:other"}


def test_hashes_depend_on_key_and_mount_contents_not_their_paths(tmp_path: Path) -> None:
    """The head's monitor sees the key and file mounts at other paths (its own copies): it
    must compute the same hashes, or `up` would take its workers for outdated ones."""
    laptop, head = tmp_path / "laptop", tmp_path / "head"
    for side, key_name, mount_name in ((laptop, "id_a", "conf.json"), (head, "ssh_key", "c")):
        side.mkdir()
        (side / key_name).write_text("the same key")
        (side / mount_name).write_text("{}")
    raw = base_raw()
    raw["auth"] = {"ssh_user": "u", "ssh_private_key": str(laptop / "id_a")}
    raw["file_mounts"] = {"~/conf.json": str(laptop / "conf.json")}
    before = hashes(load_dict(tmp_path, raw, "a.yaml"))
    raw["auth"]["ssh_private_key"] = str(head / "ssh_key")
    raw["file_mounts"] = {"~/conf.json": str(head / "c")}
    assert hashes(load_dict(tmp_path, raw, "b.yaml")) == before
    (head / "ssh_key").write_text("another key")
    assert changed(before, hashes(load_dict(tmp_path, raw, "c.yaml"))) == {
        "launch:head",
        "launch:w",
        "launch:other",
    }


def test_common_setup_commands_change_runtime_hashes_only(tmp_path: Path) -> None:
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["setup_commands"] = ["pip list", "pip install requests"]
    after = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after) == {
        f"runtime:{name}:{role}" for name in ("head", "w", "other") for role in ("head", "worker")
    }


@pytest.mark.parametrize(
    "runtime",
    [{"packages": ["numpy"]}, {"ray_extras": ["default", "data"]}],
    ids=["packages", "ray_extras"],
)
def test_what_the_nodes_install_changes_runtime_hashes_only(
    tmp_path: Path, runtime: dict[str, list[str]]
) -> None:
    """A change re-runs setup on every node (which installs it), and restarts or replaces
    none; the order Ray's extras are listed in is no change."""
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["rayctl"] = {"runtime": runtime}
    after = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after) == {
        f"runtime:{name}:{role}" for name in ("head", "w", "other") for role in ("head", "worker")
    }
    raw["rayctl"] = {"runtime": {"ray_extras": ["train", "tune", "serve", "data", "default"]}}
    assert hashes(load_dict(tmp_path, raw, "c.yaml")) == before


def test_head_setup_commands_change_head_runtime_hashes_only(tmp_path: Path) -> None:
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["head_setup_commands"] = ["echo head again"]
    after = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after) == {"runtime:head:head", "runtime:w:head", "runtime:other:head"}


def test_node_type_worker_setup_commands_change_that_types_worker_runtime_hash(
    tmp_path: Path,
) -> None:
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["available_node_types"]["w"]["worker_setup_commands"] = ["echo special"]
    after = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after) == {"runtime:w:worker"}


def test_resources_change_start_hash_not_runtime_or_launch(tmp_path: Path) -> None:
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["available_node_types"]["w"]["resources"] = {"CPU": 3}
    after = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after) == {"start:w:head", "start:w:worker"}


def test_labels_change_start_hash(tmp_path: Path) -> None:
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["available_node_types"]["w"]["labels"] = {"a": "c"}
    after = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after) == {"start:w:head", "start:w:worker"}


def test_start_commands_change_start_hash_of_that_role(tmp_path: Path) -> None:
    before = hashes(load_dict(tmp_path, base_raw(), "a.yaml"))
    raw = base_raw()
    raw["head_start_ray_commands"] = ["ray start --block --head --num-cpus=1"]
    after_head = hashes(load_dict(tmp_path, raw, "b.yaml"))
    assert changed(before, after_head) == {"start:head:head", "start:w:head", "start:other:head"}
    raw = base_raw()
    raw["worker_start_ray_commands"] = ["ray start --block --address=$RAY_HEAD_IP:6380"]
    after_worker = hashes(load_dict(tmp_path, raw, "c.yaml"))
    assert changed(before, after_worker) == {
        "start:head:worker",
        "start:w:worker",
        "start:other:worker",
    }


def mount_raw(mounts: dict[str, str]) -> dict[str, Any]:
    raw = base_raw()
    raw["file_mounts"] = mounts
    return raw


def test_file_mount_content_changes_runtime_hash(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one\n")
    raw = mount_raw({"~/data.txt": "data.txt"})
    before = hashes(load_dict(tmp_path, raw))

    data.write_text("one\n")  # rewritten, same bytes
    assert hashes(load_dict(tmp_path, raw)) == before

    data.write_text("two\n")
    after = hashes(load_dict(tmp_path, raw))
    assert changed(before, after) == {k for k in before if k.startswith("runtime:")}


def test_file_mount_directory_contents_change_runtime_hash(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "a.py").write_text("a = 1\n")
    raw = mount_raw({"~/code": "code"})
    before = hashes(load_dict(tmp_path, raw))

    (code / "pkg" / "b.py").write_text("b = 1\n")
    added = hashes(load_dict(tmp_path, raw))
    assert changed(before, added) == {k for k in before if k.startswith("runtime:")}

    (code / "pkg" / "b.py").rename(code / "pkg" / "c.py")  # same bytes, new name
    renamed = hashes(load_dict(tmp_path, raw))
    assert changed(added, renamed) == {k for k in before if k.startswith("runtime:")}


def test_file_mount_target_changes_runtime_hash(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("one\n")
    before = hashes(load_dict(tmp_path, mount_raw({"~/data.txt": "data.txt"})))
    after = hashes(load_dict(tmp_path, mount_raw({"~/elsewhere.txt": "data.txt"})))
    assert changed(before, after) == {k for k in before if k.startswith("runtime:")}


def test_rays_onprem_form_is_the_ssh_provider(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("not read while loading")
    config = load_config(
        write(
            tmp_path,
            """\
            provider: {type: local, head_ip: 10.0.0.2, worker_ips: [10.0.0.3, 10.0.0.4]}
            auth: {ssh_user: ray, ssh_private_key: key}
            """,
        )
    ).config
    assert config.provider.type == "ssh"
    assert config.provider.worker_ips == ["10.0.0.3", "10.0.0.4"]
    assert config.max_workers == 2  # the pool's size, unless given
    assert config.auth.ssh_private_key == str(tmp_path / "key")  # relative to the config
    # As Ray's: one node type, which the workers share with the head (resources: Ray detects)
    assert list(config.worker_types()) == ["local.cluster.node"] == [config.head_node_type]
    assert config.type_max_workers("local.cluster.node") == 2
    assert config.available_node_types["local.cluster.node"].resources == {}


def test_ssh_worker_limit_is_the_pool_even_when_max_workers_says_more(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("")
    config = load_dict(
        tmp_path,
        {
            "max_workers": 10,
            "provider": {"type": "ssh", "head_ip": "h", "worker_ips": ["w1", "w2", "w3"]},
            "auth": {"ssh_user": "u", "ssh_private_key": "key"},
        },
    )
    assert (config.max_workers, config.worker_limit) == (10, 3)


def test_minimal_aws_config_gets_rays_aws_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
            provider:
              type: aws
              region: us-west-2
              availability_zone: us-west-2a, us-west-2b
              ssh_source_cidrs: [203.0.113.7/32, "2001:db8::/32"]
            """,
        )
    ).config
    provider = config.provider
    assert provider.type == "aws"
    assert (provider.cache_stopped_nodes, provider.use_internal_ips) == (True, False)
    assert provider.zones == ["us-west-2a", "us-west-2b"]
    assert provider.security_group is None
    assert config.worker_limit == config.max_workers == 2  # no pool: max_workers alone
    assert config.head_node_type == "ray.head.default"
    assert list(config.worker_types()) == ["ray.worker.default"]
    for node_type in config.available_node_types.values():
        assert node_type.node_config == {"InstanceType": "m5.large"}  # ImageId: looked up
    assert config.auth.ssh_user == "ubuntu"
    assert config.auth.ssh_private_key is None  # rayctl creates the cluster's key pair


def test_aws_ssh_sources_default_to_the_vpc_with_internal_addresses(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("")
    config = load_dict(
        tmp_path,
        {
            "provider": {"type": "aws", "region": "eu-west-1", "use_internal_ips": True},
            "auth": {"ssh_private_key": "key"},
            "available_node_types": {
                "head": {"node_config": {"InstanceType": "m5.large", "KeyName": "mine"}}
            },
            "head_node_type": "head",
        },
    )
    assert config.provider.ssh_source_cidrs is None
    assert config.auth.ssh_private_key == str(tmp_path / "key")  # relative to the config
    assert config.auth.ssh_user == "ubuntu"  # the default merges under the given auth


def test_a_relative_wheelhouse_is_made_absolute_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    raw = {"provider": {"type": "local"}, "rayctl": {"runtime": {"wheelhouse": "wheels"}}}
    config = load_dict(tmp_path, raw)
    assert config.rayctl.runtime.wheelhouse == str(tmp_path.resolve() / "wheels")


def test_limits_met_exactly_are_accepted(tmp_path: Path) -> None:
    """min_workers equal to a type's max_workers, and adding up to max_workers, are fine."""
    types = {
        "h": {"resources": {"CPU": 1}},
        "w": {"resources": {"CPU": 1}, "min_workers": 2, "max_workers": 2},
    }
    raw = {"provider": {"type": "local"}, "max_workers": 2, "available_node_types": types}
    config = load_dict(tmp_path, {**raw, "head_node_type": "h"})
    assert config.type_max_workers("w") == 2 and config.max_workers == 2


def test_a_loaded_config_is_frozen_and_knows_its_head(tmp_path: Path) -> None:
    config = load_dict(tmp_path, {"provider": {"type": "local"}})
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.max_workers = 3  # type: ignore[misc]
    assert config.head_type is config.available_node_types[config.head_node_type]
    # The head's type, without max_workers of its own, launches no workers.
    assert config.head_node_type not in config.worker_types()
    one = {**config.available_node_types[config.head_node_type].model_dump(), "max_workers": 1}
    raw = {"provider": {"type": "local"}, "available_node_types": {"h": one}, "head_node_type": "h"}
    assert list(load_dict(tmp_path, raw).worker_types()) == ["h"]  # unless it allows one


def test_the_exported_schema_shows_rays_defaults_for_keys_kept_for_compatibility(cli) -> None:
    """Editors show these defaults: Ray's, though rayctl itself does not act on the keys."""
    schema = json.loads(cli("schema").out)
    docker = {k: v.get("default") for k, v in schema["$defs"]["DockerConfig"]["properties"].items()}
    assert docker["pull_before_run"] is True
    for key in (
        "disable_automatic_runtime_detection",
        "disable_shm_size_detection",
        "use_podman",
    ):
        assert docker[key] is False
    assert schema["properties"]["file_mounts_sync_continuously"]["default"] is False


def test_remote_providers_neither_share_this_machine_nor_have_the_runtime(tmp_path: Path) -> None:
    """Nodes reached over SSH may mount files anywhere, and get the runtime installed."""
    key = tmp_path / "key"
    key.write_text("k")
    raw = {
        "provider": {"type": "ssh", "head_ip": "10.0.0.2", "worker_ips": ["10.0.0.3"]},
        "auth": {"ssh_user": "u", "ssh_private_key": str(key)},
        "file_mounts": {"/opt/data": str(tmp_path)},
    }
    config = load_dict(tmp_path, raw)
    assert config.file_mounts == {"/opt/data": str(tmp_path.resolve())}
    capabilities = config.provider.capabilities
    assert not capabilities.shares_filesystem and not capabilities.runtime_preinstalled
