"""jinja2 templates for scripts rayctl runs on nodes."""

from __future__ import annotations

import functools
import shlex
from typing import Any

import jinja2


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rayctl", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # shell scripts, not HTML; values are quoted with shell_quote
    )
    env.filters["shell_quote"] = lambda value: shlex.quote(str(value))
    return env


def render(name: str, **values: Any) -> str:
    return _environment().get_template(name).render(**values)
