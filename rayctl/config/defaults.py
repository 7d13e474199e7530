"""Provider defaults (each provider's ProviderSpec holds its own), merged deeply under what
the user wrote.

Ray merges its defaults shallowly, so a user's `provider:` block drops every default key
beside the ones written. Here nested mappings merge key by key; the one exception is
`available_node_types`, which is a set of user-named entries: when given, it replaces the
default set, and each entry then gets the per-type defaults merged under it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rayctl.config.provider_spec import ProviderSpec


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: `override` on top of `base`, merging nested dicts key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def fill_defaults(raw: dict[str, Any], specs: Mapping[str, ProviderSpec]) -> dict[str, Any]:
    """The user's config with its provider's defaults filled in. Unknown providers pass
    through unchanged so that validation can name them."""
    raw = _claimed(raw, specs)
    provider = raw.get("provider")
    ptype = provider.get("type") if isinstance(provider, dict) else None
    spec = specs.get(ptype) if isinstance(ptype, str) else None
    if spec is None:
        return copy.deepcopy(raw)
    base = dict(spec.defaults)
    types = raw.get("available_node_types")
    if isinstance(types, dict):
        # The default node types go when the user names types. As in Ray, a missing
        # head_node_type is still the default one, which the user's types may define.
        base.pop("available_node_types", None)
        if base.get("head_node_type") not in types:
            base.pop("head_node_type", None)
    filled = deep_merge(base, raw)
    if spec.fill is not None:
        filled = spec.fill(raw, filled)
    types = filled.get("available_node_types")
    if isinstance(types, dict):
        for name, node_type in types.items():
            if isinstance(node_type, dict):
                types[name] = deep_merge(dict(spec.node_type_defaults), node_type)
    return filled


def _claimed(raw: dict[str, Any], specs: Mapping[str, ProviderSpec]) -> dict[str, Any]:
    """A `provider:` section another provider claims gets that provider's type (Ray's
    on-prem form, `type: local` with head_ip, is rayctl's ssh provider)."""
    provider = raw.get("provider")
    if not isinstance(provider, dict):
        return raw
    for spec in specs.values():
        if spec.claims is not None and spec.claims(provider):
            return {**raw, "provider": {**provider, "type": spec.kind}}
    return raw
