"""The clusters this machine knows. `up` records each cluster's validated config in its state
dir (rayctl.paths.cluster_record), so every other command can find and reach it by name,
without its YAML, and `down` can use it when the YAML no longer validates. `down` moves the
record aside (rayctl.paths.removed_record): a later command by that name knows the cluster
is gone, and tells a removed cluster from a misspelt one.

A record holds what the config holds (paths to keys, never the keys or Ray's token), and is
written 0600 all the same. The nodes themselves are the provider's truth (local state, the
ssh head's pool, EC2 tags); the record says where to look.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rayctl.config.documents import read_document
from rayctl.config.loader import LoadedConfig
from rayctl.errors import ClusterNotFound, ConfigError, RayctlError
from rayctl.paths import cluster_record, removed_record, write_atomic
from rayctl.providers.base import NodeKind
from rayctl.providers.registry import load_config, make_provider, validate

LIST_THREADS = 8


class ClusterRecord(BaseModel):
    name: str
    provider: str
    config_path: str  # the YAML of its last `up`
    recorded_at: float
    config: dict[str, Any]  # validated, defaults filled, paths made absolute
    removed_at: float | None = None  # set by `down`


def record(home: Path, loaded: LoadedConfig) -> None:
    """At `up`, before anything is created: remember the cluster and how to reach it."""
    path = cluster_record(home, loaded.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = ClusterRecord(
        name=loaded.name,
        provider=loaded.config.provider.type,
        config_path=str(loaded.path),
        recorded_at=time.time(),
        config=loaded.config.model_dump(mode="json"),
    )
    write_atomic(path, entry.model_dump_json(indent=1), mode=0o600)
    removed_record(home, loaded.name).unlink(missing_ok=True)


def forget(home: Path, loaded: LoadedConfig) -> None:
    """At the end of a `down` that left nothing: move the record aside, marked removed."""
    path = cluster_record(home, loaded.name)
    entry = _read(path) or ClusterRecord(
        name=loaded.name,
        provider=loaded.config.provider.type,
        config_path=str(loaded.path),
        recorded_at=time.time(),
        config=loaded.config.model_dump(mode="json"),
    )
    entry.removed_at = time.time()
    gone = removed_record(home, loaded.name)
    gone.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(gone, entry.model_dump_json(indent=1), mode=0o600)
    path.unlink(missing_ok=True)


def _read(path: Path) -> ClusterRecord | None:
    try:
        return ClusterRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        why = str(exc).splitlines()[0]
        raise RayctlError(f"the cluster record {path} is unreadable ({why}); delete it") from None


def recorded(home: Path, name: str) -> ClusterRecord | None:
    return _read(cluster_record(home, name))


def removed(home: Path, name: str) -> ClusterRecord | None:
    return _read(removed_record(home, name))


def names(home: Path) -> list[str]:
    """The clusters recorded here (not removed), sorted."""
    return sorted(p.parent.name for p in (home / "clusters").glob("*/cluster.json"))


def loaded_from(entry: ClusterRecord, cluster_name: str | None = None) -> LoadedConfig:
    """The recorded config, as `up` validated it (again `-n` may rename it)."""
    raw = dict(entry.config)
    if cluster_name is not None:
        raw["cluster_name"] = cluster_name
    try:
        return LoadedConfig(validate(raw), Path(entry.config_path))
    except ValidationError as exc:  # recorded by another rayctl version
        raise RayctlError(
            f"the recorded config of cluster '{entry.name}' no longer validates "
            f"({exc.errors()[0]['msg']}); use its YAML ({entry.config_path})"
        ) from None


def open_cluster(
    target: Path, cluster_name: str | None, home: Path, *, record_if_invalid: bool = False
) -> tuple[LoadedConfig, str | None]:
    """The config of an existing cluster, named by `target`: a path that exists is a
    config, anything else a cluster name (recorded, or removed); else ClusterNotFound.
    With `record_if_invalid` (`down`: a teardown is never blocked by an edit) a config
    that does not validate but names its provider and cluster falls back to that
    cluster's record. Returns the config and a note for the user, if any."""
    if not target.exists():
        entry = recorded(home, str(target)) or removed(home, str(target))
        if entry is None:
            raise unknown(str(target), home)
        loaded = loaded_from(entry, cluster_name)
        check_not_misspelt(loaded, home)
        return loaded, None
    try:
        loaded = load_config(target, cluster_name=cluster_name)
    except ConfigError as invalid:
        entry = _record_of_invalid(target, cluster_name, home) if record_if_invalid else None
        if entry is None:
            raise
        note = "\n".join(
            [
                f"warning: {target} is invalid:",
                *invalid.problems,
                f"using the config recorded by its last `up` instead: "
                f"{cluster_record(home, entry.name)}",
            ]
        )
        return loaded_from(entry), note
    check_not_misspelt(loaded, home)
    return loaded, None


def _record_of_invalid(target: Path, cluster_name: str | None, home: Path) -> ClusterRecord | None:
    """The record of the cluster an invalid config names (its provider type and cluster
    name still readable, and the record's provider the same), or None."""
    try:
        raw = read_document(target, str(target), empty="").data
    except ConfigError:
        return None
    name = cluster_name or raw.get("cluster_name")
    provider = raw.get("provider")
    kind = provider.get("type") if isinstance(provider, dict) else None
    entry = recorded(home, name) if isinstance(name, str) and name else None
    return entry if entry is not None and entry.provider == kind else None


def unknown(name: str, home: Path) -> ClusterNotFound:
    """No file and no cluster by that name: name the known ones, the nearest first."""
    known = names(home)
    if not known:
        return ClusterNotFound(
            f"no config file or cluster named '{name}'; no cluster is known on this machine "
            "(`rayctl up CONFIG` records one)"
        )
    nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {nearest[0]}?" if nearest else ""
    return ClusterNotFound(
        f"no config file or cluster named '{name}'{hint} (known: {', '.join(known)})"
    )


def check_not_misspelt(loaded: LoadedConfig, home: Path) -> None:
    """Refuse a cluster name that looks like a typo of a known cluster's (ClusterNotFound,
    exit 4), rather than answer for a cluster that is not there. A name this machine
    recorded or removed, or that has nodes (a cluster `up` elsewhere), is never a typo; a
    name like no known one is not either: `down` of it has nothing to do, and exits 0."""
    name = loaded.name
    if recorded(home, name) or removed(home, name):
        return
    similar = [k for k in names(home) if confusable(name, k)]
    if not similar:
        return
    with contextlib.suppress(RayctlError):  # the command itself will report it
        if make_provider(loaded.config, home=home).list_nodes():
            return
    raise ClusterNotFound(
        f"no cluster named '{name}'; did you mean {' or '.join(similar)}? "
        "(`rayctl clusters` lists the clusters this machine knows)"
    )


_SEPARATORS = re.compile(r"[-_. ]")


def confusable(a: str, b: str) -> bool:
    """Whether two cluster names look like one misspelt: equal but for case and separators
    (de_day1, De-Day1), or one letter apart (added, dropped, changed or two swapped).
    Names that differ in a digit (ci-123, ci-124; day1, day2) name different clusters."""
    x, y = (_SEPARATORS.sub("", s.lower()) for s in (a, b))
    if x == y:
        return a != b
    if len(x) < len(y):
        x, y = y, x
    if len(x) - len(y) > 1:
        return False
    i = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), len(y))
    if len(x) > len(y):  # one added: the rest matches once it is skipped
        return x[i].isalpha() and x[i + 1 :] == y[i:]
    if x[i + 1 :] == y[i + 1 :]:  # one changed
        return x[i].isalpha() and y[i].isalpha()
    swapped = x[i : i + 2]  # two neighbours swapped
    return swapped.isalpha() and swapped[::-1] == y[i : i + 2] and x[i + 2 :] == y[i + 2 :]


class KnownCluster(BaseModel):
    name: str
    provider: str
    nodes: int | None  # None when the provider could not be asked
    head_ip: str | None
    config: str  # the YAML of its last `up`
    record: str
    error: str | None = None


def list_clusters(home: Path) -> list[KnownCluster]:
    """Every recorded cluster with its nodes as its provider lists them now (asked in
    parallel: one slow or unreachable provider delays only its own row)."""
    entries = [e for e in (recorded(home, n) for n in names(home)) if e is not None]
    with ThreadPoolExecutor(max_workers=LIST_THREADS) as pool:
        return list(pool.map(lambda e: _describe(e, home), entries))


def _describe(entry: ClusterRecord, home: Path) -> KnownCluster:
    row = KnownCluster(
        name=entry.name,
        provider=entry.provider,
        nodes=None,
        head_ip=None,
        config=entry.config_path,
        record=str(cluster_record(home, entry.name)),
    )
    try:
        nodes = make_provider(loaded_from(entry).config, home=home).list_nodes()
    except RayctlError as exc:
        row.error = str(exc).splitlines()[0]
        return row
    row.nodes = len(nodes)
    row.head_ip = next((n.internal_ip for n in nodes if n.kind is NodeKind.HEAD), None)
    return row
