"""Pydantic models of Ray's cluster YAML, plus rayctl's own `rayctl:` section, independent of
any provider: `provider:` is a ProviderSettings here, and the registry
(rayctl.providers.registry) builds the model with every provider's own section.

Every model forbids unknown keys, so a misspelt key is an error with a suggestion rather
than a setting that is silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat

ClusterName = Annotated[
    str,
    Field(
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
        max_length=40,
        description="Letters, digits, '-', '_' and '.'; it names the cluster's state and tags.",
    ),
]


class StrictModel(BaseModel):
    # strict: `max_workers: true` or `"3"` is a mistake to report, not a value to coerce.
    # No .inf or .nan in any number: they pass every bound check and break arithmetic.
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, defer_build=True, allow_inf_nan=False
    )


class AuthConfig(StrictModel):
    ssh_user: str | None = None
    ssh_private_key: str | None = None
    ssh_public_key: str | None = None
    ssh_proxy_command: str | None = None


class DockerConfig(StrictModel):
    """Ray's docker section: with a container_name, every node runs Ray in a container
    (rayctl.runtime.docker). A node type's own section overrides the cluster's key by key."""

    image: str | None = None
    head_image: str | None = None
    worker_image: str | None = None
    container_name: str | None = None
    pull_before_run: bool = True
    run_options: list[str] = []
    head_run_options: list[str] = []
    worker_run_options: list[str] = []
    disable_automatic_runtime_detection: bool = False
    disable_shm_size_detection: bool = False
    use_podman: bool = False


class Capabilities(StrictModel):
    """What a kind of provider's nodes are like, so that code outside providers/ asks about
    a property rather than a provider's name. (A fixed pool of hosts is said by pool_size.)"""

    shares_filesystem: bool = False  # nodes are this machine: its files, its Python
    runtime_preinstalled: bool = False  # nodes already have this rayctl and Ray
    # Autostop: the head's monitor can remove the whole cluster, its own node and what the
    # provider made for it included (`down: true`); and can stop the nodes and keep them for
    # a later `up` (`down: false`).
    removes_itself: bool = False
    stops_nodes: bool = False
    # ... also in docker mode, where the head's monitor runs in the head's container.
    removes_itself_in_docker: bool = True


class ProviderSettings(StrictModel):
    """The `provider:` section. Each kind of provider subclasses this in its own package
    (rayctl/providers/<kind>/config.py) with `type: Literal[kind]`; the registry joins them
    into the union a config is validated against."""

    type: str
    capabilities: ClassVar[Capabilities] = Capabilities()

    @property
    def pool_size(self) -> int | None:
        """How many workers the provider's fixed pool of hosts holds (None: no such pool)."""
        return None


class NodeTypeConfig(StrictModel):
    node_config: dict[str, Any] = {}
    resources: dict[str, NonNegativeFloat] = {}
    min_workers: NonNegativeInt = 0
    max_workers: NonNegativeInt | None = None
    idle_timeout_s: NonNegativeFloat | None = None
    labels: dict[str, str] = {}
    worker_setup_commands: list[str] | None = None
    docker: DockerConfig | None = None


# Ray's extras that rayctl itself depends on (pyproject.toml), and so the nodes by default.
DEFAULT_RAY_EXTRAS = ("default", "data", "serve", "tune", "train")


class RuntimeSettings(StrictModel):
    python: str | None = Field(
        None,
        description="Interpreter on the nodes that has (or gets) rayctl and Ray. "
        "Default: for local nodes, the Python running rayctl; for other nodes, a venv that "
        "rayctl creates at ~/.rayctl/runtime.",
    )
    wheelhouse: str | None = Field(
        None, description="Directory of wheels for hosts without internet access."
    )
    ray_extras: list[str] = Field(
        list(DEFAULT_RAY_EXTRAS),
        description="Ray's extras the nodes get (pip's ray[...]): 'default' (required: the "
        "dashboard, which runs jobs) and Ray's libraries, as rayctl itself depends on. Fewer "
        "make a smaller install; others (e.g. 'rllib') add libraries.",
    )
    packages: list[str] = Field(
        [],
        description="More pip requirements every node gets at setup (e.g. 'lightgbm==4.*'), "
        "from the package index or the wheelhouse. Local nodes run the Python running rayctl, "
        "which must have them already.",
    )


class NodeTypeSettings(StrictModel):
    cost: NonNegativeFloat | None = Field(
        None, description="Relative price of one node; the autoscaler launches the cheapest fit."
    )


class SecuritySettings(StrictModel):
    ray_token_auth: bool = Field(
        True,
        description="Ray's token authentication on every node and for every client rayctl "
        "runs: a token per cluster, made by the first `up`, kept (mode 0600) in the "
        "cluster's directory under the rayctl home and at "
        "~/.rayctl/clusters/<cluster_name>/ray_auth_token on the nodes. false leaves Ray's "
        "ports (GCS, client server, dashboard) open to anyone who reaches them, who can then "
        "run code on every node; `up` warns each time.",
    )


class AutostopSettings(StrictModel):
    idle_minutes: PositiveFloat = Field(
        description="Stop the cluster after it has been idle this long: no Ray job or driver "
        "runs, nothing waits for resources and no node is busy. Fractions are allowed "
        "(0.5: 30 s)."
    )
    down: bool = Field(
        False,
        description="Remove the cluster as `rayctl down` does, instead of stopping its nodes "
        "for a later `rayctl up` (providers that cannot stop nodes need true).",
    )


class RegistryLogin(StrictModel):
    """Docker mode's registry credentials (Ray's launcher has none: its users log in from
    initialization_commands, and the login expires)."""

    server: str = Field(description="The registry to log in to, e.g. ghcr.io.")
    username: str
    password_file: str = Field(
        description="A file on this machine that holds the password or token (relative to "
        "the config). Each node's engine logs in again whenever rayctl sets the node up, "
        "reading it on stdin from a copy (mode 0600) that is removed right after; the head "
        "keeps a copy with the cluster's secrets for the workers its autoscaler launches."
    )


class RayctlSettings(StrictModel):
    runtime: RuntimeSettings = RuntimeSettings()
    security: SecuritySettings = SecuritySettings()
    autostop: AutostopSettings | None = Field(
        None, description="Stop or remove the cluster when it stays idle (`up --autostop`)."
    )
    registry_login: RegistryLogin | None = Field(
        None, description="Log each node's container engine in to a private registry."
    )
    node_types: dict[str, NodeTypeSettings] = Field(
        {}, description="rayctl's settings per node type, by names in available_node_types."
    )


class ClusterConfig(StrictModel):
    cluster_name: ClusterName = "default"
    max_workers: NonNegativeInt = 2
    upscaling_speed: PositiveFloat = 1.0
    idle_timeout_minutes: NonNegativeFloat = 5
    provider: ProviderSettings
    auth: AuthConfig = AuthConfig()
    available_node_types: dict[str, NodeTypeConfig]
    head_node_type: str
    file_mounts: dict[str, str] = {}
    cluster_synced_files: list[str] = []
    file_mounts_sync_continuously: bool = False
    rsync_exclude: list[str] = []
    rsync_filter: list[str] = []
    initialization_commands: list[str] = []
    setup_commands: list[str] = []
    head_setup_commands: list[str] = []
    worker_setup_commands: list[str] = []
    head_start_ray_commands: list[str] = []
    worker_start_ray_commands: list[str] = []
    docker: DockerConfig = DockerConfig()
    metadata: dict[str, Any] = {}
    min_workers: NonNegativeInt | None = Field(
        None,
        description="Ray's pre-2.0 key. Ray 2.x ignores it (on-prem hosts without "
        "available_node_types: the workers' min_workers); use the node types' min_workers.",
    )
    rayctl: RayctlSettings = RayctlSettings()

    @property
    def head_type(self) -> NodeTypeConfig:
        return self.available_node_types[self.head_node_type]

    def worker_types(self) -> dict[str, NodeTypeConfig]:
        """Node types workers may be launched as (the head's type too, if it allows workers)."""
        return {
            name: t
            for name, t in self.available_node_types.items()
            if name != self.head_node_type or (t.max_workers or 0) > 0
        }

    @property
    def worker_limit(self) -> int:
        """max_workers, but never more workers than the provider's pool of hosts holds."""
        pool = self.provider.pool_size
        return self.max_workers if pool is None else min(self.max_workers, pool)

    def type_max_workers(self, name: str) -> int:
        t = self.available_node_types[name]
        if t.max_workers is not None:
            return t.max_workers
        return 0 if name == self.head_node_type else self.max_workers

    def docker_for(self, node_type: str) -> DockerConfig | None:
        """The docker settings of a node type (its own `docker:` keys over the cluster's, as
        in Ray), or None when its nodes run without a container (no container_name)."""
        own = self.available_node_types[node_type].docker
        merged = {
            **self.docker.model_dump(exclude_unset=True),
            **(own.model_dump(exclude_unset=True) if own is not None else {}),
        }
        docker = DockerConfig.model_validate(merged)
        return docker if docker.container_name else None

    def setup_commands_for(self, node_type: str, *, head: bool) -> list[str]:
        """Ray's rule: setup_commands, then head_ or worker_setup_commands; a node type's
        worker_setup_commands replace the global list."""
        if head:
            return [*self.setup_commands, *self.head_setup_commands]
        own = self.available_node_types[node_type].worker_setup_commands
        return [*self.setup_commands, *(own if own is not None else self.worker_setup_commands)]
