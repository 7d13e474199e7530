"""jinja2 templates for scripts rayctl runs on nodes."""

from __future__ import annotations

import functools
import re
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2  # only when a script is rendered: `rayctl --help` and `validate` need none

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rayctl", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # shell scripts, not HTML; values are quoted with shell_quote
    )
    env.filters["shell_quote"] = lambda value: shlex.quote(str(value))
    env.filters["shell_path"] = shell_path
    return env


_TILDE_PREFIX = re.compile(r"~([a-z_][a-z0-9_.-]*)?(?=/|$)")


def shell_path(path: object) -> str:
    """A path as one shell word, quoted, with a leading `~` or `~/` turned into "$HOME"/
    (`~user/` stays unquoted), so that it still means the home after a `cd` and in quotes."""
    text = str(path)
    prefix = _TILDE_PREFIX.match(text)
    if prefix is None:
        return shlex.quote(text)
    rest = text[prefix.end() :].removeprefix("/")
    head = '"$HOME"' if prefix.group(1) is None else prefix.group(0)
    return f"{head}/{shlex.quote(rest)}" if rest else head


def render(name: str, **values: Any) -> str:
    return _environment().get_template(name).render(**values)
