"""Parse YAML into plain data plus the source position of every key and value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Path = tuple[str | int, ...]

# Bounds on what one document may hold, so that a crafted file (an alias bomb, a self-
# referencing alias, thousands of nested brackets) is refused quickly instead of exhausting
# memory or the stack. A real cluster config has a few hundred values, nested < 10 deep.
MAX_DEPTH = 64
MAX_VALUES = 100_000  # after alias expansion: each use of an alias counts its values again


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class PositionedYaml:
    data: Any
    positions: dict[Path, Position]  # a path's key (for mapping entries) or value position

    def position_of(self, path: Path) -> Position:
        """The position of `path`, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)


class YamlSyntaxError(Exception):
    def __init__(self, message: str, position: Position, path: Path = ()) -> None:
        super().__init__(message)
        self.position = position
        self.path = path  # the key path, when the problem is in a value parsed so far


def _mark(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _pos(node: yaml.Node) -> Position:
    return _mark(node.start_mark)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's composer recurses once per nesting level: stop it at MAX_DEPTH, before
    Python's own recursion limit turns deep nesting into an internal error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self._depth >= MAX_DEPTH:
            raise YamlSyntaxError(
                f"nested more than {MAX_DEPTH} levels deep", _mark(self.peek_event().start_mark)
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


def parse(text: str) -> PositionedYaml:
    """Parse one YAML document. Raises YamlSyntaxError for bad syntax, duplicate keys, and
    documents beyond the bounds above."""
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return PositionedYaml(None, {})
        positions: dict[Path, Position] = {(): _pos(root)}
        data = _Builder(loader, positions).build(root, ())
        return PositionedYaml(data, positions)
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(*_describe_syntax_error(exc)) from None
    finally:
        loader.dispose()


def _describe_syntax_error(exc: yaml.MarkedYAMLError) -> tuple[str, Position]:
    """PyYAML's message, at the place a person should look. For an unclosed bracket or
    quote that is where it opens (the context mark), not where parsing gave up."""
    context, problem = exc.context or "", exc.problem or str(exc)
    mark = exc.problem_mark
    if exc.context_mark and ("flow" in context or "quoted" in context):
        mark = exc.context_mark
        problem = f"{problem} (found at line {exc.problem_mark.line + 1})"
        context = context.replace("while parsing a flow", "this unclosed flow").replace(
            "while scanning a quoted scalar", "this unclosed quoted string"
        )
    message = f"invalid YAML: {context}: {problem}" if context else f"invalid YAML: {problem}"
    position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
    return message, position


class _Builder:
    """Plain data from composed nodes, recording positions. Aliases are expanded, so each
    value counts against MAX_VALUES every time it is used, and an alias inside the node it
    names (a cycle) is refused."""

    def __init__(self, loader: yaml.SafeLoader, positions: dict[Path, Position]) -> None:
        self._loader = loader
        self._positions = positions
        self._values = 0
        self._open: set[int] = set()  # ids of the collections being built: a cycle's ancestors

    def build(self, node: yaml.Node, path: Path) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise YamlSyntaxError(
                f"more than {MAX_VALUES} values once aliases are expanded; "
                "write the values out or use fewer aliases",
                self._positions.get(path, _pos(node)),
                path,
            )
        if isinstance(node, yaml.ScalarNode):
            return _scalar(self._loader, node)
        if len(path) >= MAX_DEPTH:  # aliases nest what they name deeper than it was written
            where = self._positions.get(path, _pos(node))
            raise YamlSyntaxError(f"nested more than {MAX_DEPTH} levels deep", where, path)
        if id(node) in self._open:
            where = self._positions.get(path, _pos(node))  # the alias, not its anchor
            raise YamlSyntaxError("an alias refers to a value that contains it", where, path)
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return self._sequence(node, path)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSyntaxError("YAML merge keys (<<) are not supported", _pos(key_node))
            key = _scalar(self._loader, key_node)
            if key in result:
                raise YamlSyntaxError(f"duplicate key {key!r}", _pos(key_node))
            child = (*path, key)
            self._positions[child] = _pos(key_node)
            result[key] = self.build(value_node, child)
        return result

    def _sequence(self, node: yaml.SequenceNode, path: Path) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            self._positions[child] = _pos(item)
            items.append(self.build(item, child))
        return items


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlSyntaxError("a mapping key must be a plain value", _pos(node))
    return loader.construct_object(node, deep=True)
