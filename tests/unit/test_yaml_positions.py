"""`rayctl.config.yaml_positions.parse`: data plus the 1-based position of every key and item."""

from __future__ import annotations

import pytest

from rayctl.config.yaml_positions import Position, YamlSyntaxError, parse

NESTED = """\
# a comment line
top: 1
outer:
  inner:
    leaf: [a, b]
  items:
    - first
    - name: second
      size: 2.5
    -   third
flow: {k: v, n: 3}
"""


def test_data_is_plain_python() -> None:
    doc = parse(NESTED)
    assert doc.data == {
        "top": 1,
        "outer": {
            "inner": {"leaf": ["a", "b"]},
            "items": ["first", {"name": "second", "size": 2.5}, "third"],
        },
        "flow": {"k": "v", "n": 3},
    }


@pytest.mark.parametrize(
    ("path", "line", "column"),
    [
        ((), 2, 1),  # the root mapping starts at its first key
        (("top",), 2, 1),
        (("outer",), 3, 1),
        (("outer", "inner"), 4, 3),
        (("outer", "inner", "leaf"), 5, 5),
        (("outer", "inner", "leaf", 0), 5, 12),
        (("outer", "inner", "leaf", 1), 5, 15),
        (("outer", "items"), 6, 3),
        (("outer", "items", 0), 7, 7),
        (("outer", "items", 1), 8, 7),
        (("outer", "items", 1, "name"), 8, 7),
        (("outer", "items", 1, "size"), 9, 7),
        (("outer", "items", 2), 10, 9),
        (("flow",), 11, 1),
        (("flow", "k"), 11, 8),
        (("flow", "n"), 11, 14),
    ],
)
def test_positions_of_keys_and_items(path: tuple, line: int, column: int) -> None:
    doc = parse(NESTED)
    assert doc.positions[path] == Position(line, column)
    assert doc.position_of(path) == Position(line, column)


def test_every_key_and_item_has_a_position() -> None:
    assert len(parse(NESTED).positions) == 16


def test_position_of_falls_back_to_nearest_ancestor() -> None:
    doc = parse(NESTED)
    assert doc.position_of(("outer", "inner", "missing")) == Position(4, 3)
    assert doc.position_of(("outer", "inner", "missing", "deeper", 3)) == Position(4, 3)
    assert doc.position_of(("outer", "items", 7, "name")) == Position(6, 3)
    assert doc.position_of(("nowhere",)) == Position(2, 1)  # the root


def test_empty_document() -> None:
    for text in ("", "\n", "# only a comment\n"):
        doc = parse(text)
        assert doc.data is None
        assert doc.positions == {}
        assert doc.position_of(("anything",)) == Position(1, 1)


def test_non_mapping_roots() -> None:
    doc = parse("- a\n- b\n")
    assert doc.data == ["a", "b"]
    assert doc.positions == {(): Position(1, 1), (0,): Position(1, 3), (1,): Position(2, 3)}
    assert parse("hello\n").data == "hello"


@pytest.mark.parametrize(
    ("text", "line", "column", "key"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, 1, "a"),
        ("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n", 5, 3, "c"),
        ("a: {x: 1, y: 2, x: 3}\n", 1, 17, "x"),
        ("a:\n  - k: 1\n    k: 2\n", 3, 5, "k"),
    ],
)
def test_duplicate_keys_are_rejected_at_the_duplicate(
    text: str, line: int, column: int, key: str
) -> None:
    with pytest.raises(YamlSyntaxError) as info:
        parse(text)
    assert str(info.value) == f"duplicate key {key!r}"
    assert info.value.position == Position(line, column)


def test_same_key_in_different_mappings_is_fine() -> None:
    assert parse("a: {k: 1}\nb: {k: 2}\n").data == {"a": {"k": 1}, "b": {"k": 2}}


MERGE = "base: &b\n  type: local\nprovider:\n  <<: *b\n"


def test_yaml_merge_keys_are_rejected_at_the_key() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        parse(MERGE)
    assert info.value.position == Position(4, 3)


def test_yaml_merge_keys_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        parse(MERGE)
    assert str(info.value) == "YAML merge keys (<<) are not supported"


def test_a_quoted_merge_key_is_an_ordinary_key() -> None:
    assert parse("a: 1\n'<<': 2\n").data == {"a": 1, "<<": 2}


def test_complex_keys_are_rejected() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        parse("a: 1\n? [x, y]\n: 2\n")
    assert str(info.value) == "a mapping key must be a plain value"
    assert info.value.position == Position(2, 3)


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("a: 1\n b: 2\n", 2, 3, "mapping values are not allowed here"),
        ("a:\n  b: 1\n c: 2\n", 3, 2, "expected <block end>"),
        ("a:\n\tb: 1\n", 2, 1, "found character '\\t' that cannot start any token"),
        ("a: [1, 2\nb: 3\n", 1, 4, "this unclosed flow sequence"),
        ("a: 1\n---\nb: 2\n", 2, 1, "found another document"),
        ("a: *nope\n", 1, 4, "found undefined alias 'nope'"),
    ],
)
def test_syntax_errors_carry_a_position(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(YamlSyntaxError) as info:
        parse(text)
    assert str(info.value).startswith("invalid YAML: ")
    assert fragment in str(info.value)
    assert info.value.position == Position(line, column)
