"""The providers rayctl knows, each declared once by its package's light config module (a
ProviderSpec: model, defaults, checks, capabilities, SDK extra, factory). Everything that
depends on the set of providers derives from here: the config model's `provider:` union, the
types named in messages, `rayctl schema`, defaults and checks, and `make_provider`.

Adding a provider is one package under rayctl/providers/ plus one line in `_BUILTIN`.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field, create_model

from rayctl.config import defaults, loader
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import ClusterConfig
from rayctl.errors import RayctlError
from rayctl.providers.aws.config import SPEC as AWS
from rayctl.providers.azure.config import SPEC as AZURE
from rayctl.providers.fake.config import SPEC as FAKE
from rayctl.providers.gcp.config import SPEC as GCP
from rayctl.providers.local.config import SPEC as LOCAL
from rayctl.providers.ssh.config import SPEC as SSH

if TYPE_CHECKING:
    from rayctl.providers.base import NodeProvider

_BUILTIN: tuple[ProviderSpec, ...] = (LOCAL, SSH, AWS, GCP, AZURE, FAKE)
_SPECS: dict[str, ProviderSpec] = {spec.kind: spec for spec in _BUILTIN}
# Providers from outside rayctl: comma-separated "module:attribute" of ProviderSpecs. A
# provider that runs the autoscaler on a head passes it on there (in prepare_head's env).
PLUGINS_ENV = "RAYCTL_PROVIDERS"


@functools.cache
def _load_plugins() -> None:
    """Once per process, when the providers are first needed (not at import)."""
    for entry in filter(None, os.environ.get(PLUGINS_ENV, "").split(",")):
        module_name, _, attribute = entry.strip().partition(":")
        try:
            spec = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise RayctlError(f"{PLUGINS_ENV}: cannot load provider '{entry}': {exc}") from None
        if not isinstance(spec, ProviderSpec):
            raise RayctlError(f"{PLUGINS_ENV}: '{entry}' is not a ProviderSpec")
        _SPECS[spec.kind] = spec


def register(spec: ProviderSpec) -> None:
    """Add a provider (or replace one of the same kind), e.g. one a test brings."""
    _SPECS[spec.kind] = spec
    cluster_model.cache_clear()


def unregister(kind: str) -> None:
    _SPECS.pop(kind, None)
    cluster_model.cache_clear()


def specs() -> dict[str, ProviderSpec]:
    """Every provider, by kind: rayctl's own, those of RAYCTL_PROVIDERS, registered ones."""
    _load_plugins()
    return _SPECS


@functools.cache
def cluster_model() -> type[ClusterConfig]:
    """ClusterConfig whose `provider:` is any registered provider's section, told apart by
    `type`."""
    models = tuple(spec.model for spec in specs().values())
    union = Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007
    return create_model("ClusterConfig", __base__=ClusterConfig, provider=(union, ...))


def load_config(
    path: str | os.PathLike[str], *, cluster_name: str | None = None
) -> loader.LoadedConfig:
    """Read and validate a cluster config file; raises ConfigError listing every problem."""
    return loader.load_config(path, specs=specs(), model=cluster_model(), cluster_name=cluster_name)


def fill_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with its provider's defaults filled in (unknown providers left alone)."""
    return defaults.fill_defaults(raw, specs())


def validate(raw: dict[str, Any]) -> ClusterConfig:
    """A config from a mapping (defaults filled, schema only: no file, no located errors)."""
    return cluster_model().model_validate(fill_defaults(raw))


def make_provider(config: ClusterConfig, *, home: Path) -> NodeProvider:
    """The provider of `config`; its module (and its SDK) is imported now, not before."""
    spec = specs()[config.provider.type]
    module_name, attribute = spec.factory.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if spec.extra is None or (exc.name or "").startswith("rayctl"):
            raise
        raise RayctlError(
            f"the {spec.kind} provider needs {exc.name}: pip install 'rayctl[{spec.extra}]'"
        ) from None
    provider: NodeProvider = getattr(module, attribute)(config, home=home)
    from rayctl.providers import docker  # runners and scripts: not needed to validate

    if docker.uses_docker(config):
        return docker.ContainerNodes(provider, config)
    return provider
