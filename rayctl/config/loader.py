"""Load a cluster YAML: parse, fill defaults, validate, and report every problem as
`FILE:LINE:COL: key.path: message`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from rayctl.config import runtime_packages, start_commands
from rayctl.config.defaults import fill_defaults
from rayctl.config.documents import ProblemReport, read_document, suggest
from rayctl.config.findings import Finding, Findings
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import AutostopSettings, ClusterConfig
from rayctl.config.yaml_positions import PositionedYaml


@dataclass(frozen=True)
class LoadedConfig:
    config: ClusterConfig
    path: Path
    # Located like errors (FILE:LINE:COL: key: message). `validate` prints both and passes;
    # `up` prints the warnings and refuses what is unsupported, before any work.
    warnings: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.config.cluster_name


def load_config(
    path: str | os.PathLike[str],
    *,
    specs: Mapping[str, ProviderSpec],
    model: type[ClusterConfig],
    cluster_name: str | None = None,
) -> LoadedConfig:
    """Read and validate a cluster config against `model` (ClusterConfig with the providers'
    union, from the registry, as are `specs`). Raises ConfigError listing every problem."""
    file = Path(path)
    shown = str(path)
    doc = read_document(file, shown, empty="the config is empty; see cluster-configs/local.yaml")
    raw = dict(doc.data)
    if cluster_name is not None:
        raw["cluster_name"] = cluster_name
    return validate_raw(
        raw, specs, model, doc=doc, shown=shown, path=file.resolve(), name_from_flag=cluster_name
    )


# Keys the provider's defaults would fill: not worth reporting while the provider is wrong.
_FILLED_BY_PROVIDER = {("available_node_types",), ("head_node_type",)}


def validate_raw(
    raw: dict[str, Any],
    specs: Mapping[str, ProviderSpec],
    model: type[ClusterConfig],
    *,
    doc: PositionedYaml,
    shown: str,
    path: Path,
    name_from_flag: str | None = None,
) -> LoadedConfig:
    report = ProblemReport(
        doc,
        shown,
        model,
        flag_keys={"cluster_name": "--cluster-name"} if name_from_flag is not None else {},
        provider_types=list(specs),
    )
    found = Findings()
    raw = _legacy(raw, found)
    if found.problems:
        raise report.error(found.problems)
    filled = fill_defaults(raw, specs)
    try:
        config = model.model_validate(filled)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        provider = filled.get("provider")
        if not (isinstance(provider, dict) and provider.get("type") in specs):
            errors = [
                e
                for e in errors
                if not (e["type"] == "missing" and e["loc"] in _FILLED_BY_PROVIDER)
            ]
        raise report.validation_error(errors, raw) from None
    config = _check(config, specs[config.provider.type], path.parent, found)
    if found.problems:
        raise report.error(found.problems)
    return LoadedConfig(
        config,
        path,
        warnings=tuple(report.lines(found.warnings)),
        unsupported=tuple(report.lines(found.unsupported)),
    )


# Ray's keys from before 2.0. Ray 2.x drops them when empty and refuses them otherwise.
_LEGACY_NODES = ("head_node", "worker_nodes")


def _legacy(raw: dict[str, Any], found: Findings) -> dict[str, Any]:
    """`raw` without Ray's empty pre-2.0 keys (a warning each, as Ray warns); non-empty
    ones are problems that say what replaced them."""
    kept = dict(raw)
    for key in _LEGACY_NODES:
        if key not in raw:
            continue
        if raw[key]:
            found.problems.append(
                (
                    (key,),
                    "Ray dropped head_node/worker_nodes in 2.0: move them into "
                    "available_node_types.<name>.node_config and set head_node_type",
                )
            )
        else:
            found.warnings.append(((key,), "empty pre-2.0 key, ignored as Ray 2.x does; remove it"))
            del kept[key]
    return kept


def _check(
    config: ClusterConfig, spec: ProviderSpec, base_dir: Path, found: Findings
) -> ClusterConfig:
    """Rules that span keys, then the provider's own. Returns the config with paths made
    absolute (file mount sources, the wheelhouse, what the provider resolves)."""
    shares_machine = spec.capabilities.shares_filesystem
    problems = found.problems
    if config.min_workers is not None:
        found.warnings.append(
            (
                ("min_workers",),
                "Ray 2.x ignores a top-level min_workers, and so does rayctl: set "
                "available_node_types.<name>.min_workers instead",
            )
        )
    types = config.available_node_types
    if not types:
        problems.append((("available_node_types",), "define at least one node type"))
    if config.head_node_type not in types:
        hint = suggest(config.head_node_type, list(types))
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
        problems.extend(_docker_problems(config, name))
    for name in config.rayctl.node_types:
        if name not in types:
            problems.append(
                (
                    ("rayctl", "node_types", name),
                    f"'{name}' is not in available_node_types{suggest(name, list(types))}",
                )
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
    mounts: dict[str, str] = {}
    for remote, local in config.file_mounts.items():
        source = (base_dir / os.path.expanduser(local)).resolve()
        if not source.exists():
            problems.append(
                (("file_mounts", remote), f"local path '{local}' does not exist ({source})")
            )
        if shares_machine and not remote.startswith("~"):
            problems.append(
                (
                    ("file_mounts", remote),
                    "local nodes share this machine: use a '~/...' target, which maps into "
                    "the node's own home directory",
                )
            )
        mounts[remote] = str(source)
    start_commands.check(config, shares_machine=shares_machine, found=found)
    autostop_problem = check_autostop(config.rayctl.autostop, spec, docker=in_docker(config))
    if autostop_problem:
        problems.append((("rayctl", "autostop"), autostop_problem))
    config = config.model_copy(update={"file_mounts": mounts})
    runtime = config.rayctl.runtime
    if runtime.wheelhouse:
        wheelhouse = (base_dir / os.path.expanduser(runtime.wheelhouse)).resolve()
        if not wheelhouse.is_dir():
            problems.append(
                (
                    ("rayctl", "runtime", "wheelhouse"),
                    f"'{runtime.wheelhouse}' is not a directory ({wheelhouse})",
                )
            )
        runtime = runtime.model_copy(update={"wheelhouse": str(wheelhouse)})
        config = config.model_copy(
            update={"rayctl": config.rayctl.model_copy(update={"runtime": runtime})}
        )
    runtime_packages.check(runtime, found)
    login = config.rayctl.registry_login
    if login is not None:  # read when used, as the SSH key: validation stays offline
        password = str((base_dir / os.path.expanduser(login.password_file)).resolve())
        login = login.model_copy(update={"password_file": password})
        config = config.model_copy(
            update={"rayctl": config.rayctl.model_copy(update={"registry_login": login})}
        )
    return spec.check(config, base_dir, found)


def in_docker(config: ClusterConfig) -> bool:
    """Whether any node of the config runs in a container (docker mode)."""
    return any(map(config.docker_for, config.available_node_types))


def check_autostop(
    autostop: AutostopSettings | None, spec: ProviderSpec, *, docker: bool
) -> str | None:
    """Why `autostop` cannot be had from this provider (its nodes in containers when
    `docker`), if it cannot."""
    if autostop is None:
        return None
    if autostop.down and docker and not spec.capabilities.removes_itself_in_docker:
        return (
            f"autostop with `down` in docker mode is not supported by the {spec.kind} provider "
            "yet: the head's autoscaler runs in the container it would have to remove; use "
            "`down: false` (`--autostop MINUTES` without `--down`), or run `rayctl down` when "
            "done"
        )
    capabilities = spec.capabilities
    if not capabilities.removes_itself and not capabilities.stops_nodes:
        return (
            f"the {spec.kind} provider has no autostop yet: its head can neither remove what "
            "the provider made for the cluster nor stop its nodes; remove rayctl.autostop "
            "and run `rayctl down` when done"
        )
    if autostop.down and not capabilities.removes_itself:
        return (
            f"the {spec.kind} provider's head cannot remove the cluster itself: autostop "
            "without `down` (`rayctl up --autostop MINUTES`) stops its nodes for a later `up`"
        )
    if not autostop.down and not capabilities.stops_nodes:
        return (
            f"the {spec.kind} provider cannot stop nodes to resume them later: autostop needs "
            "`down: true` (`rayctl up --autostop MINUTES --down`), which removes the cluster"
        )
    return None


def _docker_problems(config: ClusterConfig, node_type: str) -> list[Finding]:
    """Docker mode needs an image for each kind of node a type's nodes may be."""
    docker = config.docker_for(node_type)
    if docker is None:
        return []
    kinds = []
    if node_type == config.head_node_type:
        kinds.append(("head", docker.head_image))
    if node_type in config.worker_types():
        kinds.append(("worker", docker.worker_image))
    own = config.available_node_types[node_type].docker
    where = ("available_node_types", node_type, "docker") if own is not None else ("docker",)
    return [
        (
            where,
            f"docker mode (container_name is set) needs an image for {kind} nodes of "
            f"'{node_type}': set image (or {kind}_image)",
        )
        for kind, image in kinds
        if not (image or docker.image)
    ]


def resolve_private_key(config: ClusterConfig, base_dir: Path) -> ClusterConfig:
    """The config with auth.ssh_private_key (if any) made absolute, relative to the config.
    Not read here: validation is offline and passes on a machine without the key; the
    provider checks it when it first uses it."""
    auth = config.auth
    if not auth.ssh_private_key:
        return config
    key = (base_dir / os.path.expanduser(auth.ssh_private_key)).resolve()
    return config.model_copy(update={"auth": auth.model_copy(update={"ssh_private_key": str(key)})})
