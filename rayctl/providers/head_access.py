"""What providers share in `prepare_head`: the head's autoscaler reaches workers with this
cluster's SSH key and pinned host keys, copied into the head's rayctl home readable only by
its user, and syncs file mounts to workers from their copies on the head."""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping
from typing import Any

from rayctl.config.schema import ClusterConfig
from rayctl.errors import ProviderError
from rayctl.runtime.install import REMOTE_WHEELHOUSE
from rayctl.runtime.runner import CommandRunner

# The head's rayctl home, relative to its user's home: where its monitor looks (~/.rayctl).
REMOTE_HOME = ".rayctl"


def copy_secrets(runner: CommandRunner, files: Mapping[str, str]) -> None:
    """Copy local files to paths relative to the head user's home: directories 0700, files
    0600, so no other user of the head reads the cluster's key."""
    dirs = sorted({posixpath.dirname(remote) for remote in files.values()})
    quoted = " ".join(shlex.quote(d) for d in dirs)
    result = runner.run(f"umask 077 && mkdir -p {quoted} && chmod 700 {quoted}")
    if not result.ok:
        raise ProviderError(f"could not prepare the head for the autoscaler:\n{result.tail}")
    for local, remote in files.items():
        runner.put(local, f"~/{remote}")
    result = runner.run("chmod 600 " + " ".join(shlex.quote(r) for r in files.values()))
    if not result.ok:
        raise ProviderError(f"could not protect the keys on the head:\n{result.tail}")


def head_config(config: ClusterConfig, runner: CommandRunner, **update: Any) -> ClusterConfig:
    """The config as the head's monitor sees it: file mounts come from their copies on the
    head (synced there by bootstrap), and workers install from the head's wheelhouse."""
    changes: dict[str, Any] = {"file_mounts": {t: t for t in config.file_mounts}, **update}
    runtime = config.rayctl.runtime
    if runtime.wheelhouse:
        runner.sync(runtime.wheelhouse, REMOTE_WHEELHOUSE)
        changes["rayctl"] = config.rayctl.model_copy(
            update={"runtime": runtime.model_copy(update={"wheelhouse": REMOTE_WHEELHOUSE})}
        )
    return config.model_copy(update=changes)
