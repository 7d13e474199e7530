"""Errors rayctl raises. Library code raises these; only the CLI maps them to exit codes."""

from __future__ import annotations


class RayctlError(Exception):
    """Base of every error rayctl reports to a user: the message says what to do."""

    exit_code = 1


class Interrupted(RayctlError):
    """Ctrl-C stopped the command where it was (its notes say what it left)."""

    exit_code = 130


class ConfigError(RayctlError):
    """The cluster config (or a demand file) is invalid. Nothing was created."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class UnprotectedKey(RayctlError):
    """A private key that group or others may read: ssh refuses to use it, and so does
    rayctl (a usage problem the user fixes with chmod, like an invalid config)."""

    exit_code = 2


class ProviderError(RayctlError):
    """The place nodes come from refused or failed an operation."""

    exit_code = 3
    retryable = False


class CapacityError(ProviderError):
    """No capacity for this node type here right now: try elsewhere, back off."""

    retryable = True


class QuotaError(ProviderError):
    """An account limit stops the launch; retrying will not help until it is raised."""


class AuthError(ProviderError):
    """Credentials are missing or lack a permission; fatal until the user fixes them."""


class TransientError(ProviderError):
    """A temporary failure (throttling, timeouts): retry with backoff."""

    retryable = True


class TerminationFailed(ProviderError):
    """Some nodes could not be terminated (the others were). `failed` maps each node id that
    is still there to why, so callers retry those alone and go on with the rest."""

    retryable = True

    def __init__(self, failed: dict[str, str], hint: str = "") -> None:
        self.failed = failed
        super().__init__("\n".join([*failed.values(), *([hint] if hint else [])]))


class StateCorrupted(ProviderError):
    """A provider's state file cannot be read. Never read as empty: the nodes it recorded may
    still run. `nodes` are (id, address) of those it could still make out."""

    def __init__(
        self, path: str, copy: str, why: str, nodes: list[tuple[str, str]] | None = None
    ) -> None:
        self.path = path
        self.copy = copy
        self.nodes = nodes or []
        super().__init__(
            f"the cluster's state file {path} is unreadable ({why}); a copy of it is kept at "
            f"{copy}. Nothing was changed. `rayctl down --force` forgets that state (nodes it "
            "recorded may keep running: it lists what it can make out of them, to remove "
            "by hand)"
        )


class ClusterBusy(RayctlError):
    """Another rayctl command on this machine is changing the cluster (`up`, `down`)."""


class ClusterNotFound(RayctlError):
    """The command needs a running cluster and there is none by that name."""

    exit_code = 4


class BootstrapError(RayctlError):
    """A node failed one of its bootstrap stages."""

    def __init__(self, node_id: str, stage: str, detail: str) -> None:
        self.node_id = node_id
        self.stage = stage
        self.detail = detail
        super().__init__(f"node {node_id} failed while {stage}:\n{detail}")
