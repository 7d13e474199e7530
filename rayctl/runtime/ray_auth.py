"""Ray's token authentication for a cluster (Ray 2.60: `RAY_AUTH_MODE=token` in the environment
of every `ray start` and every client, the token read from the file `RAY_AUTH_TOKEN_PATH`
names).

One token per cluster, made by its first `up` and kept with mode 0600 on this machine
(rayctl.paths.ray_token_file) and on every node (head_paths.ray_token). Only the file's path
ever travels: the token is never on a command line, in an environment, or in a log.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from rayctl.config.schema import ClusterConfig
from rayctl.errors import RayctlError
from rayctl.paths import ray_token_file, write_atomic
from rayctl.runtime import head_paths
from rayctl.runtime.runner import CommandRunner, put_private
from rayctl.templates import shell_path

TOKEN_BYTES = 32  # 256 bits, as Ray's own `ray get-auth-token --generate` makes


class TokenError(RayctlError):
    """The cluster's token is not usable here: missing, or readable by others."""


@dataclass(frozen=True)
class ClusterAuth:
    """A cluster's Ray authentication as one machine sees it: `token_file` holds the token
    here (None: the config turns token authentication off)."""

    cluster_name: str
    token_file: Path | None

    @classmethod
    def local(cls, config: ClusterConfig, *, home: Path) -> ClusterAuth:
        """On the machine that runs `up` (the token in the cluster's dir of `home`)."""
        enabled = config.rayctl.security.ray_token_auth
        path = ray_token_file(home, config.cluster_name) if enabled else None
        return cls(config.cluster_name, path)

    @classmethod
    def on_node(cls, config: ClusterConfig) -> ClusterAuth:
        """On a node of the cluster (the head's monitor): the copy `up` put there."""
        enabled = config.rayctl.security.ray_token_auth
        node_path = head_paths.ray_token(config.cluster_name)
        path = Path(os.path.expanduser(f"~/{node_path}")) if enabled else None
        return cls(config.cluster_name, path)

    def ensure_token(self) -> None:
        """Make the cluster's token if it has none yet (an existing one is kept, so a
        repeated `up` leaves the running cluster's token alone)."""
        if self.token_file is None or self.token_file.exists():
            return
        self.token_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.token_file, secrets.token_hex(TOKEN_BYTES), mode=0o600)

    def require_token(self) -> Path | None:
        """The token file for a client here (None without token authentication); raises
        TokenError, saying where to find it, when it is not here or others can read it."""
        if self.token_file is None:
            return None
        try:
            mode = stat.S_IMODE(self.token_file.stat().st_mode)
        except FileNotFoundError:
            raise TokenError(
                f"cluster '{self.cluster_name}' runs with Ray token authentication but its "
                f"token is not at {self.token_file}: `rayctl up` makes it there; from another "
                f"machine, copy it there (mode 0600) from the one that ran `up`, or from "
                f"~/{head_paths.ray_token(self.cluster_name)} on the head"
            ) from None
        if mode & 0o077:
            raise TokenError(
                f"the Ray token {self.token_file} is readable by others (mode {mode:o}); run "
                f"`chmod 600 {self.token_file}`"
            )
        return self.token_file

    def shell_exports(self) -> str:
        """A shell line that gives the commands after it this cluster's Ray authentication
        on a node (an inherited RAY_AUTH_TOKEN would take precedence over the file: unset)."""
        if self.token_file is None:
            # Explicitly off: Ray turns token mode on by itself if it finds ~/.ray/auth_token.
            return "export RAY_AUTH_MODE=disabled; unset RAY_AUTH_TOKEN RAY_AUTH_TOKEN_PATH"
        path = shell_path(f"~/{head_paths.ray_token(self.cluster_name)}")
        return f"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={path}; unset RAY_AUTH_TOKEN"

    def put_token(self, runner: CommandRunner) -> None:
        """Copy the token to the node reached by `runner`, into a directory only its user
        can enter (0700) and as a file only its user can read (0600)."""
        token = self.require_token()
        if token is not None:
            put_private(runner, {str(token): head_paths.ray_token(self.cluster_name)})
