"""Where rayctl keeps its state on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def rayctl_home() -> Path:
    """RAYCTL_HOME, or ~/.rayctl. Created by the commands that write to it, never on reads."""
    return Path(os.environ.get("RAYCTL_HOME") or Path.home() / ".rayctl").resolve()
