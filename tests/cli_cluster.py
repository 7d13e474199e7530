"""One local cluster driven through the installed `rayctl` entry point (a process of its own,
as a user runs it), shared by the tests of a module: starting one costs most of a test's
time. `running` brings it up and always takes it down, checking no process outlived it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from tests.conftest import cluster_pids, kill_leftovers, unique_name, write_config

RAYCTL = Path(sys.executable).parent / "rayctl"


@dataclass(frozen=True)
class CliCluster:
    name: str
    config: Path
    env: dict[str, str]
    scratch: Path

    def rayctl(self, *args: object, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RAYCTL, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=self.env,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: object, **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [RAYCTL, *map(str, args)], text=True, env=self.env, stdin=subprocess.DEVNULL, **kwargs
        )

    @classmethod
    @contextmanager
    def running(cls, scratch: Path, prefix: str, **config: object) -> Iterator[Self]:
        """A cluster of cluster-configs/local.yaml with `config`'s keys, its rayctl home in
        `scratch`: up on entry, down on exit, and no process of it left."""
        name = unique_name(prefix)
        path = write_config(scratch / f"{name}.yaml", name, **config)
        env = {**os.environ, "RAYCTL_HOME": str(scratch / "home")}
        env.pop("RAYCTL_DEBUG", None)
        made = cls(name, path, env, scratch)
        try:
            up = made.rayctl("up", path, "--yes", timeout_s=300)
            assert up.returncode == 0, up.stderr
            yield made
        finally:
            made.rayctl("down", path, "--yes", timeout_s=300)
            deadline = time.monotonic() + 10
            while cluster_pids(name) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert kill_leftovers(name) == [], "processes outlived `rayctl down`"
