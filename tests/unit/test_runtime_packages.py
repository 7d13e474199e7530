"""Which pip requirements a Python satisfies (run on the nodes, in their own Python), and
what every node is asked to install."""

from __future__ import annotations

import importlib.metadata

from rayctl.config.runtime_packages import node_requirements, ray_extras, unmet_requirements
from rayctl.config.schema import RuntimeSettings

RAY = importlib.metadata.version("ray")
NUMPY = importlib.metadata.version("numpy")


def test_what_this_python_has_is_met() -> None:
    have = [
        f"ray[default,data,serve,tune,train]=={RAY}",  # rayctl's own dependency
        f"numpy=={NUMPY}",
        "NumPy>=1",  # names are matched as pip does
        "pydantic",
        'no-such-package-rayctl; python_version < "3"',  # not for this Python
    ]
    assert unmet_requirements(have) == []


def test_what_it_lacks_is_named_as_written() -> None:
    lacking = [
        "no-such-package-rayctl",
        "numpy<1",  # another version
        f"ray[rllib]=={RAY}",  # an extra whose packages (gymnasium, ...) are not here
        f"numpy=={NUMPY}",
    ]
    assert unmet_requirements(lacking) == lacking[:3]


def test_every_node_gets_ray_with_its_extras_then_the_packages() -> None:
    assert node_requirements(RuntimeSettings()) == [f"ray[data,default,serve,train,tune]=={RAY}"]
    chosen = RuntimeSettings(ray_extras=["serve", "default", "serve"], packages=["lightgbm==4.*"])
    assert node_requirements(chosen) == [f"ray[default,serve]=={RAY}", "lightgbm==4.*"]
    assert node_requirements(RuntimeSettings(ray_extras=[])) == [f"ray=={RAY}"]


def test_rays_extras_are_the_pinned_rays() -> None:
    assert {"default", "data", "serve", "tune", "train", "rllib"} <= set(ray_extras())
