"""Parse YAML into plain data plus the source position of every key and value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Path = tuple[str | int, ...]


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
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.position = position


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def parse(text: str) -> PositionedYaml:
    """Parse one YAML document. Raises YamlSyntaxError for bad syntax and duplicate keys."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return PositionedYaml(None, {})
        positions: dict[Path, Position] = {(): _pos(root)}
        data = _construct(loader, root, (), positions)
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


def _construct(
    loader: yaml.SafeLoader, node: yaml.Node, path: Path, positions: dict[Path, Position]
) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSyntaxError("YAML merge keys (<<) are not supported", _pos(key_node))
            key = _scalar(loader, key_node)
            if key in result:
                raise YamlSyntaxError(f"duplicate key {key!r}", _pos(key_node))
            child = (*path, key)
            positions[child] = _pos(key_node)
            result[key] = _construct(loader, value_node, child, positions)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            positions[child] = _pos(item)
            items.append(_construct(loader, item, child, positions))
        return items
    return _scalar(loader, node)


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlSyntaxError("a mapping key must be a plain value", _pos(node))
    return loader.construct_object(node, deep=True)
