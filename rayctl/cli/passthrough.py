"""Commands whose trailing arguments belong to a program on the head (`submit`, `exec`), as in
`ray submit` / `ray exec` and `ssh HOST CMD`: rayctl's own options go before SCRIPT/CMD, and
everything from there on passes through untouched, `-l` and `--tasks 1` included."""

from __future__ import annotations

import typer
from typer.core import TyperCommand


def passes_through_from(index: int) -> type[TyperCommand]:
    """A command class whose arguments from its positional argument number `index` (0-based)
    on are never parsed as options; rayctl's options may come anywhere before it, and an
    explicit `--` before it keeps working."""

    class PassThrough(TyperCommand):
        def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
            return super().parse_args(ctx, _separated(self, ctx, args, index))

    return PassThrough


def _separated(command: TyperCommand, ctx: typer.Context, args: list[str], index: int) -> list[str]:
    """`args` with `--` inserted where the program's arguments begin."""
    takes_value: dict[str, bool] = {}
    for param in command.get_params(ctx):
        if isinstance(param, typer.core.TyperOption):
            for name in (*param.opts, *param.secondary_opts):
                takes_value[name] = not (param.is_flag or param.count)
    seen = 0
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args  # the user separated them already
        if arg.startswith("-") and arg != "-":
            # `--opt=value` and `-nVALUE` carry their value; `--opt value` takes the next word
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
            if takes_value.get(name) and name == arg:
                i += 1
        elif seen == index:
            return [*args[:i], "--", *args[i:]]
        else:
            seen += 1
        i += 1
    return args
