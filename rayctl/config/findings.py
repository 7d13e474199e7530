"""What checking a config finds beyond its schema: problems (the config is invalid, exit 2),
warnings (it is valid; `validate` and `up` print them) and parts rayctl accepts in Ray's format
but does not implement yet (`validate` passes with a warning, `up` refuses them before creating
anything, so they are never silently ignored)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rayctl.config.yaml_positions import Path as KeyPath

Finding = tuple[KeyPath, str]


@dataclass
class Findings:
    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    unsupported: list[Finding] = field(default_factory=list)
