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
    type_defaults = _NODE_TYPE_DEFAULTS.get(ptype, {})
    types = filled.get("available_node_types")
    if isinstance(types, dict):
        for name, node_type in types.items():
            if isinstance(node_type, dict):
                types[name] = deep_merge(type_defaults, node_type)
    return filled
