"""The fake provider's declaration. Faults are settings, so a monitor process running a fake
config (benchmarks, `rayctl monitor`) gets them too; tests also change them at run time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt

from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import ProviderSettings


class FakeProviderConfig(ProviderSettings):
    """Nodes that exist only in memory (or in `state_file`); Ray is simulated: a node joins
    Ray `boot_s` after it is booted, and demand is what the simulation is told."""

    type: Literal["fake"]
    state_file: str | None = Field(
        None, description="Keep nodes in this JSON file (shared by processes); else memory."
    )
    boot_s: NonNegativeFloat = Field(0.0, description="From boot until Ray lists the node.")
    capacity_errors: dict[str, NonNegativeInt] = Field(
        {}, description="Node type -> how many launches fail with a capacity error."
    )
    quota_errors: dict[str, NonNegativeInt] = Field(
        {}, description="Node type -> how many launches fail with a quota error."
    )
    throttle_every: NonNegativeInt = Field(
        0, description="Every Nth provider call fails with a throttling error (0: never)."
    )
    hung_boot_types: list[str] = Field([], description="Boots of these types never finish.")
    failed_boot_types: list[str] = Field([], description="Boots of these types fail.")
    unterminatable_types: list[str] = Field(
        [], description="Terminating nodes of these types fails."
    )


SPEC = ProviderSpec(
    kind="fake",
    model=FakeProviderConfig,
    factory="rayctl.providers.fake.instances:FakeProvider",
    defaults={
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}},
            "worker": {"resources": {"CPU": 1}},
        },
    },
)
