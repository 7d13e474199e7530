"""What the nodes' runtime gets besides rayctl: Ray with the extras `rayctl.runtime.ray_extras`
names (its libraries: Data, Serve, Tune, Train, ...) and the `rayctl.runtime.packages`, as pip
requirements. Checked here, offline, against the Ray rayctl pins: each extra must be one Ray
has ('default' among them), each package a requirement pip understands, and none may name
Ray or rayctl, whose versions are rayctl's. `unmet_requirements` runs on the nodes too, in
their own Python."""

from __future__ import annotations

import importlib.metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from rayctl.config.documents import suggest
from rayctl.config.findings import Findings
from rayctl.config.schema import RuntimeSettings

_OWN = {"ray", "rayctl"}


def ray_version() -> str:
    """The Ray rayctl pins (the one installed with it)."""
    return importlib.metadata.version("ray")


def ray_extras() -> list[str]:
    """The extras the pinned Ray declares (default, data, serve, tune, train, ...)."""
    return sorted(importlib.metadata.metadata("ray").get_all("Provides-Extra") or [])


def node_requirements(runtime: RuntimeSettings) -> list[str]:
    """What pip installs on every node beside rayctl: Ray with its extras, then the packages."""
    extras = f"[{','.join(sorted(set(runtime.ray_extras)))}]" if runtime.ray_extras else ""
    return [f"ray{extras}=={ray_version()}", *runtime.packages]


def _satisfied(requirement: Requirement, seen: set[str]) -> bool:
    """Whether this Python has `requirement`: installed, in the version range, and with what
    its extras add (followed down; `seen` holds what is being checked, against cycles)."""
    if requirement.marker is not None and not requirement.marker.evaluate():
        return True  # not for this Python
    try:
        dist = importlib.metadata.distribution(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    if not requirement.specifier.contains(dist.version, prereleases=True):
        return False
    key = f"{canonicalize_name(requirement.name)}{sorted(requirement.extras)}"
    if key in seen:
        return True
    seen.add(key)
    for text in dist.requires or []:
        dep = Requirement(text)
        if dep.marker is None or dep.marker.evaluate({"extra": ""}):
            continue  # the distribution's own dependency, installed with it
        if any(dep.marker.evaluate({"extra": e}) for e in requirement.extras):
            dep.marker = None  # met: what remains is the package, its versions and extras
            if not _satisfied(dep, seen):
                return False
    return True


def unmet_requirements(requirements: list[str]) -> list[str]:
    """Those of the pip `requirements` this Python does not satisfy."""
    return [text for text in requirements if not _satisfied(Requirement(text), set())]


def check(runtime: RuntimeSettings, found: Findings) -> None:
    known = ray_extras()
    if "default" not in runtime.ray_extras:
        found.problems.append(
            (
                ("rayctl", "runtime", "ray_extras"),
                "keep 'default': it is Ray's dashboard, which runs rayctl's jobs",
            )
        )
    for index, extra in enumerate(runtime.ray_extras):
        if extra not in known:
            found.problems.append(
                (
                    ("rayctl", "runtime", "ray_extras", index),
                    f"'{extra}' is not an extra of ray {ray_version()}{suggest(extra, known)} "
                    f"(Ray's extras: {', '.join(known)})",
                )
            )
    for index, text in enumerate(runtime.packages):
        where = ("rayctl", "runtime", "packages", index)
        try:
            name = canonicalize_name(Requirement(text).name)
        except InvalidRequirement as exc:
            found.problems.append(
                (where, f"'{text}' is not a pip requirement ({exc}); e.g. 'lightgbm==4.*'")
            )
            continue
        if name in _OWN:
            found.problems.append(
                (
                    where,
                    f"'{text}': the nodes get rayctl's own {name} version; choose Ray's "
                    "libraries with rayctl.runtime.ray_extras",
                )
            )
