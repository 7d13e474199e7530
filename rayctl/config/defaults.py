"""Per-provider defaults, merged deeply under what the user wrote.

Ray merges its defaults shallowly, so a user's `provider:` block drops every default key
beside the ones written. Here nested mappings merge key by key; the one exception is
`available_node_types`, which is a set of user-named entries: when given, it replaces the
default set, and each entry then gets the per-type defaults merged under it.
"""

from __future__ import annotations

import copy
from typing import Any

_PROVIDER_DEFAULTS: dict[str, dict[str, Any]] = {
    "local": {
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}},
            "ray.worker.default": {"resources": {"CPU": 1}},
        },
    },
    # As Ray's on-prem provider: one type for the head and the workers. Hosts' resources are
    # left to Ray to detect unless the config gives them.
    "ssh": {
        "head_node_type": "local.cluster.node",
        "available_node_types": {"local.cluster.node": {}},
    },
    # As Ray's AWS defaults. No ImageId: rayctl looks up Canonical's current Ubuntu LTS for
    # the instance type's architecture when the cluster is brought up. Resources are left
    # to Ray to detect; give them to plan before any node is up.
    "aws": {
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"node_config": {"InstanceType": "m5.large"}},
            "ray.worker.default": {"node_config": {"InstanceType": "m5.large"}},
        },
        "auth": {"ssh_user": "ubuntu"},
    },
}

# Merged under each node type. Local nodes get one CPU unless told otherwise: Ray would
# detect every core of the machine for each node, which the scheduler cannot know.
_NODE_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "local": {"resources": {"CPU": 1}},
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: `override` on top of `base`, merging nested dicts key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def fill_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """The user's config with provider defaults filled in. Unknown providers pass through
    unchanged so that validation can name them."""
    raw = _read_ray_onprem(raw)
    provider = raw.get("provider")
    ptype = provider.get("type") if isinstance(provider, dict) else None
    defaults = _PROVIDER_DEFAULTS.get(ptype) if isinstance(ptype, str) else None
    if defaults is None:
        return copy.deepcopy(raw)
    user_types = raw.get("available_node_types")
    base = dict(defaults)
    if isinstance(user_types, dict):
        # The default head type names a default node type: both go when the user names types.
        base.pop("available_node_types")
        base.pop("head_node_type")
    filled = deep_merge(base, raw)
    pool = provider.get("worker_ips") if ptype == "ssh" else None
    if isinstance(pool, list):  # by default as many workers as the pool has hosts
        filled.setdefault("max_workers", len(pool))
        if not isinstance(user_types, dict):
            filled["available_node_types"]["local.cluster.node"]["max_workers"] = len(pool)
    type_defaults = _NODE_TYPE_DEFAULTS.get(ptype, {})
    types = filled.get("available_node_types")
    if isinstance(types, dict):
        for name, node_type in types.items():
            if isinstance(node_type, dict):
                types[name] = deep_merge(type_defaults, node_type)
    return filled


def _read_ray_onprem(raw: dict[str, Any]) -> dict[str, Any]:
    """Ray's on-prem form, `type: local` with head_ip and worker_ips, is rayctl's ssh
    provider; rayctl's own `type: local` (no head_ip) runs nodes on this machine."""
    provider = raw.get("provider")
    if isinstance(provider, dict) and provider.get("type") == "local" and "head_ip" in provider:
        return {**raw, "provider": {**provider, "type": "ssh"}}
    return raw
