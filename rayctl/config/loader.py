"""Load a cluster YAML: parse, fill defaults, validate, and report every problem as
`FILE:LINE:COL: key.path: message`."""

from __future__ import annotations

import difflib
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from rayctl.config.defaults import fill_defaults
from rayctl.config.schema import PROVIDER_TYPES, ClusterConfig
from rayctl.config.yaml_positions import Path as KeyPath
from rayctl.config.yaml_positions import PositionedYaml, YamlSyntaxError, parse
from rayctl.errors import ConfigError


@dataclass(frozen=True)
class LoadedConfig:
    config: ClusterConfig
    path: Path

    @property
    def name(self) -> str:
        return self.config.cluster_name


def load_config(path: str | os.PathLike[str], *, cluster_name: str | None = None) -> LoadedConfig:
    """Read and validate a cluster config. Raises ConfigError listing every problem found."""
    file = Path(path)
    shown = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{shown}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{shown}: cannot read: {exc}"]) from None
    try:
        doc = parse(text)
    except YamlSyntaxError as exc:
        pos = exc.position
        raise ConfigError([f"{shown}:{pos.line}:{pos.column}: {exc}"]) from None
    if doc.data is None:
        raise ConfigError([f"{shown}:1:1: the config is empty; see cluster-configs/local.yaml"])
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{shown}:1:1: the top level must be a mapping of keys to values"])
    raw = dict(doc.data)
    if cluster_name is not None:
        raw["cluster_name"] = cluster_name
    base_dir = file.resolve().parent
    config = _validate(raw, doc, shown, base_dir, name_from_flag=cluster_name is not None)
    return LoadedConfig(config, file.resolve())


# Keys the provider's defaults would fill: not worth reporting while the provider is wrong.
_FILLED_BY_PROVIDER = {("available_node_types",), ("head_node_type",)}


def _validate(
    raw: dict[str, Any], doc: PositionedYaml, shown: str, base_dir: Path, *, name_from_flag: bool
) -> ClusterConfig:
    def located(path: KeyPath, message: str) -> tuple[int, int, str]:
        if name_from_flag and path[:1] == ("cluster_name",):
            return (0, 0, f"--cluster-name: {message}")
        pos = doc.position_of(path)
        where = _format_path(path)
        return (pos.line, pos.column, f"{shown}:{pos.line}:{pos.column}: {where}{message}")

    try:
        config = ClusterConfig.model_validate(fill_defaults(raw))
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        provider = raw.get("provider")
        if not (isinstance(provider, dict) and provider.get("type") in PROVIDER_TYPES):
            errors = [
                e
                for e in errors
                if not (e["type"] == "missing" and e["loc"] in _FILLED_BY_PROVIDER)
            ]
        problems = [located(*_describe(err, raw)) for err in errors]
        raise ConfigError([text for *_, text in sorted(set(problems))]) from None
    config, semantic = _check(config, base_dir)
    if semantic:
        problems = [located(path, message) for path, message in semantic]
        raise ConfigError([text for *_, text in sorted(set(problems))])
    return config


def _format_path(path: KeyPath) -> str:
    if not path:
        return ""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"{text}: "


def _describe(err: Any, raw: dict[str, Any]) -> tuple[KeyPath, str]:
    path: KeyPath = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(path[-1])
        if path[:1] == ("provider",) and key in ("head_ip", "worker_ips"):
            return path, (
                "unknown key; rayctl's local provider runs every node on this machine, "
                "on-prem hosts (head_ip, worker_ips) are not supported yet"
            )
        hint = _suggest(key, _allowed_keys(path[:-1]))
        return path, f"unknown key{hint}"
    if kind == "missing":
        message = f"missing required key '{path[-1]}'"
        types = raw.get("available_node_types")
        if path == ("head_node_type",) and isinstance(types, dict) and types:
            message += f" (one of: {', '.join(map(str, types))})"
        return path[:-1], message
    if kind == "string_pattern_mismatch" and path == ("cluster_name",):
        return path, (
            "use only letters, digits, '-', '_' and '.', starting with a letter or digit "
            f"(got {err['input']!r})"
        )
    if path == ("provider", "type"):
        expected = ", ".join(PROVIDER_TYPES)
        value = err.get("input")
        hint = _suggest(str(value), list(PROVIDER_TYPES)) if isinstance(value, str) else ""
        return path, f"unknown provider type {value!r} (expected one of: {expected}){hint}"
    message = re.sub(r" or instance of \w+", "", err["msg"])  # pydantic's class names
    message = message[0].lower() + message[1:]
    if kind == "list_type":
        message += " (write a YAML list: one '- item' per line)"
    if kind not in ("dict_type", "list_type", "model_type") and "input" in err:
        message += f" (got {err['input']!r})"
    return path, message


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


@functools.cache
def _schema() -> dict[str, Any]:
    return ClusterConfig.model_json_schema()


def _allowed_keys(path: KeyPath) -> list[str]:
    """Keys the schema allows in the mapping at `path`."""
    root = _schema()
    defs = root.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while True:
            if "$ref" in node:
                node = defs[node["$ref"].rsplit("/", 1)[-1]]
            elif "anyOf" in node:
                objects = [resolve(o) for o in node["anyOf"] if o.get("type") != "null"]
                node = objects[0] if objects else {}
            else:
                return node

    node = resolve(root)
    for part in path:
        if part in node.get("properties", {}):
            node = resolve(node["properties"][part])
        elif isinstance(node.get("additionalProperties"), dict):
            node = resolve(node["additionalProperties"])
        elif "items" in node:
            node = resolve(node["items"])
        else:
            return []
    return list(node.get("properties", {}))


_RAY_STOP = re.compile(r"(^|[;&|\s])ray\s+stop\b")


def _check(
    config: ClusterConfig, base_dir: Path
) -> tuple[ClusterConfig, list[tuple[KeyPath, str]]]:
    """Rules that span keys. Returns the config with file mount sources made absolute."""
    problems: list[tuple[KeyPath, str]] = []
    types = config.available_node_types
    if not types:
        problems.append((("available_node_types",), "define at least one node type"))
    if config.head_node_type not in types:
        hint = _suggest(config.head_node_type, list(types))
        problems.append(
            (("head_node_type",), f"'{config.head_node_type}' is not in available_node_types{hint}")
        )
    for name, node_type in types.items():
        if node_type.max_workers is not None and node_type.min_workers > node_type.max_workers:
            problems.append(
                (
                    ("available_node_types", name, "min_workers"),
                    f"min_workers ({node_type.min_workers}) is greater than "
                    f"max_workers ({node_type.max_workers})",
                )
            )
        if node_type.docker is not None and node_type.docker.container_name:
            problems.append(
                (("available_node_types", name, "docker"), "docker mode is not supported yet")
            )
    total_min = sum(t.min_workers for t in types.values())
    if total_min > config.max_workers:
        problems.append(
            (
                ("max_workers",),
                f"the node types' min_workers add up to {total_min}, "
                f"more than max_workers ({config.max_workers})",
            )
        )
    if config.docker.container_name:
        problems.append(
            (("docker", "container_name"), "docker mode is not supported yet; remove docker:")
        )
    mounts: dict[str, str] = {}
    for remote, local in config.file_mounts.items():
        source = (base_dir / os.path.expanduser(local)).resolve()
        if not source.exists():
            problems.append(
                (("file_mounts", remote), f"local path '{local}' does not exist ({source})")
            )
        if config.provider.type == "local" and not remote.startswith("~"):
            problems.append(
                (
                    ("file_mounts", remote),
                    "local nodes share this machine: use a '~/...' target, which maps into "
                    "the node's own home directory",
                )
            )
        mounts[remote] = str(source)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for index, command in enumerate(getattr(config, key)):
            if config.provider.type == "local" and _RAY_STOP.search(command):
                problems.append(
                    (
                        (key, index),
                        "'ray stop' would stop every Ray process on this machine; "
                        "rayctl stops local nodes by PID, remove it",
                    )
                )
    return config.model_copy(update={"file_mounts": mounts}), problems
