"""Getting rayctl and Ray onto a node (DESIGN §4).

A node's runtime is the interpreter `rayctl.runtime.python` names (default: a venv that
bootstrap creates at ~/.rayctl/runtime). `runtime_identity()` names this rayctl (version and
a hash of its installed files) and Ray; the node runs the same function with its own Python,
and when both print the same string there is nothing to install. Otherwise rayctl's own wheel,
built here from the installed package (no network, no source tree) and cached by its source
hash, is uploaded and installed with pip, Ray and the rest coming from the package index or
from the configured wheelhouse. Ray's extras (its libraries) and the extra packages are the
config's (rayctl.runtime.ray_extras and .packages): the same check reports those the node's
Python lacks, and pip installs just the requirements when rayctl and Ray are already there.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shlex
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import rayctl
from rayctl.config.runtime_packages import node_requirements
from rayctl.errors import RayctlError
from rayctl.paths import rayctl_home
from rayctl.runtime import head_paths
from rayctl.templates import shell_path

if TYPE_CHECKING:
    from rayctl.config.schema import ClusterConfig
    from rayctl.runtime.runner import CommandResult, CommandRunner

RUNTIME_DIR = head_paths.RUNTIME_DIR
DEFAULT_PYTHON = head_paths.DEFAULT_PYTHON
CHECK_TIMEOUT_S = 120.0
INSTALL_TIMEOUT_S = float(os.environ.get("RAYCTL_INSTALL_TIMEOUT_S", "1800"))

_PACKAGE_DIR = Path(rayctl.__file__).resolve().parent
# Prints the requirements (argv) this Python lacks, as JSON, then its runtime identity last.
_IDENTITY_CODE = (
    "import json, sys; from rayctl.config.runtime_packages import unmet_requirements; "
    "from rayctl.runtime.install import runtime_identity; "
    'print("unmet", json.dumps(unmet_requirements(sys.argv[1:]))); print(runtime_identity())'
)
# Whether the node's rayctl is an editable install (a developer's tree), by any rayctl version.
_EDITABLE_CODE = """\
import importlib.metadata as m, json
try:
    d = m.distribution("rayctl")
except m.PackageNotFoundError:
    raise SystemExit
u = json.loads(d.read_text("direct_url.json") or "{}")
if u.get("dir_info", {}).get("editable"):
    print("editable", u.get("url", ""))
"""
_WHEEL_TAG = "py3-none-any"
_ENTRY_POINTS = "[console_scripts]\nrayctl = rayctl.cli.app:main\n"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # reproducible archives: the same tree, the same bytes


class RuntimeInstallError(RayctlError):
    """rayctl and Ray could not be installed on a node; the message ends with the output."""


def runtime_python(config: ClusterConfig) -> str:
    """The interpreter on the nodes that has (or gets) rayctl and Ray: the configured one;
    for nodes on this machine the Python running rayctl; else the runtime venv."""
    if config.rayctl.runtime.python:
        return config.rayctl.runtime.python
    if config.provider.capabilities.shares_filesystem:
        return sys.executable
    return DEFAULT_PYTHON


def runtime_path_export(config: ClusterConfig) -> str:
    """A command putting the runtime's bin directory first on PATH, so that commands written
    for Ray (`pip install ...`, `ray start ...`, `python job.py`) use the runtime's pip, ray
    and python on every node, whatever PATH rayctl itself was run with (for nodes on this
    machine the bin directory is that of the Python running rayctl, not resolved: a venv's)."""
    return f'export PATH={shell_path(str(Path(runtime_python(config)).parent))}:"$PATH"'


# --- identity -------------------------------------------------------------------------------


Snapshot = list[tuple[str, bytes]]  # (path relative to the package, posix; content), sorted


def _package_files(package_dir: Path) -> Snapshot:
    """Every file of the package, read once (so that a wheel and its hash agree even while
    an editable tree is being edited); no bytecode."""
    found = []
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath, name)
            found.append((path.relative_to(package_dir).as_posix(), path.read_bytes()))
    return sorted(found)


def _snapshot_hash(files: Snapshot) -> str:
    h = hashlib.sha256()
    for rel, data in files:
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


def source_hash(package_dir: Path | None = None) -> str:
    """A short content hash of rayctl's files (names and bytes), so that an editable install
    of a changed tree differs. `package_dir` defaults to the installed package. Not cached
    (about a millisecond): a process started now would run the tree as it is now."""
    return _snapshot_hash(_package_files(package_dir or _PACKAGE_DIR))


def _ray_version() -> str:
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _identity(source: str) -> str:
    return f"rayctl {rayctl.__version__} {source} ray {_ray_version()}"


def runtime_identity(package_dir: Path | None = None) -> str:
    """This rayctl (version and source hash) and Ray (version), as one line. A node whose
    Python prints the same line has the same runtime."""
    return _identity(source_hash(package_dir))


# --- the wheel ------------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _metadata_text(version: str) -> tuple[str, str]:
    """The installed distribution's METADATA (with its Requires-Dist) and entry points."""
    try:
        dist = importlib.metadata.distribution("rayctl")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeInstallError(
            "rayctl is not installed as a package here (pip install rayctl, or pip install -e "
            "its source tree), so its wheel cannot be built"
        ) from None
    metadata = dist.read_text("METADATA")
    if not metadata:
        raise RuntimeInstallError(f"the installed rayctl {dist.version} has no METADATA")
    # An editable install's metadata can lag the tree's version: the wheel's name rules.
    metadata = re.sub(r"(?m)^Version: .*$", f"Version: {version}", metadata, count=1)
    # Ray without extras: the nodes get those the config names (rayctl.runtime.ray_extras).
    metadata = re.sub(r"(?m)^Requires-Dist: ray\[[^\]]*\]", "Requires-Dist: ray", metadata)
    return metadata, dist.read_text("entry_points.txt") or _ENTRY_POINTS


def _write_wheel(target: Path, files: Snapshot, version: str) -> None:
    dist_info = f"rayctl-{version}.dist-info"
    metadata, entry_points = _metadata_text(version)
    wheel = (
        "Wheel-Version: 1.0\n"
        f"Generator: rayctl {rayctl.__version__}\n"
        "Root-Is-Purelib: true\n"
        f"Tag: {_WHEEL_TAG}\n"
    )
    entries = [(f"rayctl/{rel}", data) for rel, data in files]
    entries += [
        (f"{dist_info}/METADATA", metadata.encode()),
        (f"{dist_info}/WHEEL", wheel.encode()),
        (f"{dist_info}/entry_points.txt", entry_points.encode()),
    ]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in entries:
        writer.writerow([name, _record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    entries.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)


_build_lock = threading.Lock()


def wheel_name(version: str | None = None) -> str:
    return f"rayctl-{version or rayctl.__version__}-{_WHEEL_TAG}.whl"


def build_wheel(cache_dir: Path, package_dir: Path | None = None) -> Path:
    """rayctl's own wheel, from the installed package files: `cache_dir/<source hash>/
    rayctl-<version>-py3-none-any.whl`, built once and reused. Its directory's name is the
    source hash the wheel was made of."""
    files = _package_files(package_dir or _PACKAGE_DIR)
    target = cache_dir / _snapshot_hash(files) / wheel_name()
    with _build_lock:  # nodes bootstrap in parallel threads
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".building-", suffix=".whl")
        os.close(fd)
        try:
            _write_wheel(Path(tmp), files, rayctl.__version__)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)  # atomic: another process sees a whole wheel or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


# --- installing on a node -------------------------------------------------------------------


def identity_command(python: str, requirements: list[str]) -> str:
    words = " ".join(shlex.quote(r) for r in requirements)
    return f"{shell_path(python)} -c {shlex.quote(_IDENTITY_CODE)} {words}".rstrip()


@dataclass(frozen=True)
class NodeReport:
    """What the identity command said: the node's runtime identity (None: no rayctl that
    answers) and the requirements it lacks (all of them when it did not say)."""

    identity: str | None
    unmet: list[str]


def _report(result: CommandResult, requirements: list[str]) -> NodeReport:
    lines = result.tail.strip().splitlines()
    if not result.ok or not lines:
        return NodeReport(None, requirements)
    unmet = requirements
    if len(lines) > 1 and lines[-2].startswith("unmet "):
        with contextlib.suppress(ValueError):
            unmet = json.loads(lines[-2].removeprefix("unmet "))
    return NodeReport(lines[-1].strip(), unmet)


def _local_wheelhouse(configured: str) -> Path:
    path = Path(os.path.expanduser(configured))
    if path.is_dir():
        return path
    raise RuntimeInstallError(f"rayctl.runtime.wheelhouse: {configured} is not a directory")


def node_wheelhouse(config: ClusterConfig) -> str | None:
    """The config's wheelhouse as the nodes see it: this machine's directory where nodes are
    this machine, else the copy bootstrap keeps on each node (sync_wheelhouse)."""
    configured = config.rayctl.runtime.wheelhouse
    if not configured:
        return None
    if config.provider.capabilities.shares_filesystem:
        return str(_local_wheelhouse(configured).resolve())
    return head_paths.WHEELHOUSE


def sync_wheelhouse(runner: CommandRunner, config: ClusterConfig) -> None:
    """Bring the node's copy of the configured wheelhouse up to date (rsync: only what
    changed; nodes on this machine read the directory itself). Bootstrap does this every
    time, not only when it installs the runtime: jobs' `--pip` installs from this copy too,
    so a wheel added to the wheelhouse reaches every node with the next `up`."""
    configured = config.rayctl.runtime.wheelhouse
    if configured and not config.provider.capabilities.shares_filesystem:
        runner.sync(str(_local_wheelhouse(configured)), head_paths.WHEELHOUSE)


def ensure_runtime(
    runner: CommandRunner,
    config: ClusterConfig,
    *,
    stream: Callable[[str], None] | None = None,
    cache_dir: Path | None = None,
) -> bool:
    """Make the node's runtime Python have this rayctl, Ray with the configured extras, and
    the configured packages, from the package index or the configured wheelhouse (its copy on
    the node: sync_wheelhouse first). Returns False when it already had them (one command
    run), True when it installed any; raises RuntimeInstallError with the failing command's
    output otherwise. pip's output goes to `stream`."""
    python = runtime_python(config)
    want = runtime_identity()
    requirements = node_requirements(config.rayctl.runtime)
    emit = stream or (lambda _line: None)

    def run(command: str, timeout_s: float) -> CommandResult:
        emit(f"$ {command}")
        return runner.run(command, timeout_s=timeout_s, stream=stream)

    check = identity_command(python, requirements)
    first = run(check, CHECK_TIMEOUT_S)
    found = _report(first, requirements)
    if found.identity == want and not found.unmet:
        return False
    if first.exit_code in (126, 127) and python != DEFAULT_PYTHON:  # bash: no such file
        raise RuntimeInstallError(
            f"rayctl.runtime.python: {python} is not an interpreter on the node; install "
            f"Python there, or leave the setting out to use a venv at {RUNTIME_DIR}:"
            f"\n{first.tail}"
        )

    py = shell_path(python)
    pip = f"{py} -m pip --disable-pip-version-check --no-input"

    def install(command: str, wanted: list[str], *, wheel: str | None = None) -> None:
        """pip install the `wanted` requirements (and rayctl's `wheel` on the node) with
        `command`, from the package index or the configured wheelhouse."""
        sources = ""
        wheelhouse = config.rayctl.runtime.wheelhouse
        on_node = node_wheelhouse(config)
        if on_node:
            sources = f"--no-index --find-links {shell_path(on_node)} "
        words = [shell_path(wheel)] if wheel else []
        words += [shlex.quote(r) for r in wanted]
        result = run(
            f"{command} install --progress-bar off {sources}{' '.join(words)}", INSTALL_TIMEOUT_S
        )
        if not result.ok:
            what = ", ".join([*(["rayctl"] if wheel else []), *wanted])
            where = f"the wheelhouse {wheelhouse}" if wheelhouse else "the package index"
            raise RuntimeInstallError(
                f"installing {what} into {python} from {where} failed "
                f"(exit {result.exit_code}):\n{result.tail}"
            )

    def verify(identity: str) -> bool:
        """After installing: the node reports `identity` and lacks nothing; True."""
        result = run(check, CHECK_TIMEOUT_S)
        after = _report(result, requirements)
        if after.identity != identity:
            raise RuntimeInstallError(
                f"after installing, {python} reports {after.identity or 'nothing'!r} instead "
                f"of {identity!r} (exit {result.exit_code}):\n{result.tail}"
            )
        if after.unmet:
            raise RuntimeInstallError(
                f"after installing, {python} still lacks {', '.join(after.unmet)}:\n{result.tail}"
            )
        return True

    if found.identity == want:  # only Ray's extras or packages are missing
        install(pip, found.unmet)
        return verify(want)
    editable = run(f"{py} -c {shlex.quote(_EDITABLE_CODE)}", CHECK_TIMEOUT_S)
    if editable.ok and editable.tail.strip().startswith("editable "):
        # A developer's tree, maybe this very one on a shared filesystem being edited right
        # now: look once more, and never replace it (its packages may still be installed).
        again = _report(run(check, CHECK_TIMEOUT_S), requirements)
        if again.identity == runtime_identity():
            if not again.unmet:
                return False
            install(pip, again.unmet)
            return verify(again.identity)
        raise RuntimeInstallError(
            f"{python} has rayctl installed in editable mode "
            f"({editable.tail.strip().removeprefix('editable ')}), and it is not this rayctl "
            f"({found.identity or 'no identity'} there, {want} here); rayctl does not replace "
            "an editable install: update that tree, or set rayctl.runtime.python to another "
            "interpreter"
        )
    if python == DEFAULT_PYTHON:
        venv = shell_path(RUNTIME_DIR)
        create = (
            f"test -x {py} || {{ command -v python3 >/dev/null || "
            f"{{ echo 'python3: not found' >&2; exit 127; }}; "
            f"python3 -m venv {venv} || {{ code=$?; rm -rf {venv}; exit $code; }}; }}"
        )
        result = run(create, CHECK_TIMEOUT_S)
        if not result.ok:
            raise RuntimeInstallError(
                f"could not create the runtime venv {RUNTIME_DIR} with `python3 -m venv` "
                f"(exit {result.exit_code}): the node needs Python 3.11+ with its venv module "
                "(Debian/Ubuntu: apt-get install python3-venv; initialization_commands can do "
                "that), or set rayctl.runtime.python to an interpreter on the node that has "
                f"rayctl and Ray:\n{result.tail}"
            )

    wheel = build_wheel(cache_dir or rayctl_home() / "wheels")
    want = _identity(wheel.parent.name)  # what was built, should the tree change meanwhile
    remote_wheel = f"{head_paths.RUNTIME_WHEELS}/{wheel.parent.name}/{wheel.name}"
    runner.put(str(wheel), remote_wheel)
    # The same version of rayctl from another tree would count as installed: remove it first,
    # so that the new wheel and its Requires-Dist (the pinned Ray) are what pip installs.
    uninstall = f"{{ {pip} uninstall -y -q rayctl >/dev/null 2>&1 || true; }} && "
    install(uninstall + pip, requirements, wheel=remote_wheel)
    return verify(want)
