"""Every path rayctl keeps on a node, relative to the node user's home (`~`): the one place
they are spelled. Local nodes have a home of their own under this machine's rayctl home, so
the same paths hold there.

`home_path(...)` gives the `~/...` form, for runners' put/get and, through
templates.shell_path, for scripts.
"""

from __future__ import annotations

import posixpath

# The node's rayctl directory, relative to its home; on the head also the monitor's
# RAYCTL_HOME, where providers there look for keys and state.
RAYCTL_DIR = ".rayctl"


def home_relative(*parts: str) -> str:
    """A path under the node's rayctl directory, relative to the home (`.rayctl/a/b`)."""
    return posixpath.join(RAYCTL_DIR, *parts)


def home_path(*parts: str) -> str:
    """`~/.rayctl/<parts>`."""
    return "~/" + home_relative(*parts)


# The autoscaler on the head: its detached process's slot, the config it runs and the status
# it writes after each tick.
MONITOR_SLOT = "monitor"
MONITOR_CONFIG = home_path("monitor", "cluster.yaml")
MONITOR_STATUS = home_path("monitor", "status.json")
MONITOR_LEASE = home_path("monitor", "lease")  # held by the one monitor that acts
# The runtime venv bootstrap creates (rayctl + Ray), the wheels uploaded to install it, and
# the wheelhouse synced to the head for the workers its monitor installs.
RUNTIME_DIR = home_path("runtime")
DEFAULT_PYTHON = home_path("runtime", "bin", "python")
RUNTIME_WHEELS = home_path("runtime", "wheels")
WHEELHOUSE = home_path("wheelhouse")


def procs_dir(slot: str) -> str:
    """A detached process's slot (start script, PID, output)."""
    return home_path("procs", slot)


def job_dir(job_id: str) -> str:
    """Where a job's script and working dir wait on the head until Ray has packaged them
    (removed once the job is submitted)."""
    return home_path("jobs", job_id)


def pool_dir(cluster: str) -> str:
    """The ssh provider's host pool of a cluster, kept on its head (relative to the home)."""
    return home_relative("pool", cluster)


def cluster_secrets(cluster: str) -> str:
    """The one directory that holds a cluster's secrets on a node (relative to the home):
    on the head its SSH key and pinned host keys for the monitor (whose provider finds them
    under its RAYCTL_HOME). Keep every secret of a cluster on a node here: releasing a host
    (`down`, or the autoscaler giving it back) removes this directory."""
    return home_relative("clusters", cluster)


def ray_token(cluster: str) -> str:
    """The cluster's Ray authentication token on every node (mode 0600, in the 0700
    cluster_secrets directory; relative to the home): RAY_AUTH_TOKEN_PATH names it."""
    return posixpath.join(cluster_secrets(cluster), "ray_auth_token")


# Which cluster holds an on-prem host: one claim file per host address (ssh provider).
CLAIMS_DIR = home_relative("claims")


def released_with_host(cluster: str, node_id: str, *, head: bool) -> list[str]:
    """What of a cluster a host keeps until the cluster lets it go (relative to the home):
    its secrets, and the slots of its processes there (their scripts carry their
    environment); on the head also the monitor's slot and its config and status."""
    paths = [cluster_secrets(cluster), home_relative("procs", node_id)]
    if head:
        paths += [home_relative("procs", MONITOR_SLOT), home_relative("monitor")]
    return paths


def key_pair(name: str) -> str:
    """A key pair rayctl created for a cloud cluster, on the head (relative to the home)."""
    return home_relative("keys", f"{name}.pem")
