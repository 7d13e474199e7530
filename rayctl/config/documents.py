"""Read YAML (or JSON) documents that users write, and report what is wrong with them as
`FILE:LINE:COL: key.path: message`, with a suggestion for misspelt keys."""

from __future__ import annotations

import difflib
import functools
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic

from rayctl.config.yaml_positions import Path as KeyPath
from rayctl.config.yaml_positions import PositionedYaml, YamlSyntaxError, parse
from rayctl.errors import ConfigError

# A cluster config or demand file is a few KiB; more is a mistake (or an attack on memory).
MAX_DOCUMENT_BYTES = 1 << 20


def read_document(file: Path, shown: str, *, empty: str) -> PositionedYaml:
    """Parse a file whose top level must be a mapping; raises ConfigError otherwise."""
    text = _read_text(file, shown)
    try:
        doc = parse(text)
    except YamlSyntaxError as exc:
        pos = exc.position
        where = _format_path(exc.path)
        raise ConfigError([f"{shown}:{pos.line}:{pos.column}: {where}{exc}"]) from None
    if doc.data is None:
        raise ConfigError([f"{shown}:1:1: {empty}"])
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{shown}:1:1: the top level must be a mapping of keys to values"])
    return doc


def _read_text(file: Path, shown: str) -> str:
    """A regular file's text, at most MAX_DOCUMENT_BYTES. Opened without blocking and checked
    before reading, so a FIFO, a directory or a device is refused instead of hanging."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError([f"{shown}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot read: {exc.strerror}"]) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError([f"{shown}: not a regular file; give the path of a YAML file"])
        data = os.read(fd, MAX_DOCUMENT_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ConfigError(
            [f"{shown}: larger than {MAX_DOCUMENT_BYTES >> 10} KiB; is it the right file?"]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{shown}: not UTF-8 text (byte {exc.start})"]) from None


class ProblemReport:
    """Turns key paths and pydantic errors into located, sorted messages."""

    def __init__(
        self,
        doc: PositionedYaml,
        shown: str,
        model: type[pydantic.BaseModel],
        *,
        flag_keys: dict[str, str] | None = None,
        provider_types: Sequence[str] = (),
    ) -> None:
        self._doc = doc
        self._provider_types = list(provider_types)  # named when `provider.type` is wrong
        self._shown = shown
        self._model = model
        self._flag_keys = flag_keys or {}  # top-level keys set from a command-line flag

    def _located(self, path: KeyPath, message: str) -> tuple[int, int, str]:
        flag = self._flag_keys.get(str(path[0])) if path else None
        if flag:
            return (0, 0, f"{flag}: {message}")
        pos = self._doc.position_of(path)
        where = _format_path(path)
        return (pos.line, pos.column, f"{self._shown}:{pos.line}:{pos.column}: {where}{message}")

    def lines(self, findings: list[tuple[KeyPath, str]]) -> list[str]:
        """`FILE:LINE:COL: key.path: message` for each, in line order."""
        located = sorted({self._located(path, message) for path, message in findings})
        return [text for *_, text in located]

    def error(self, problems: list[tuple[KeyPath, str]]) -> ConfigError:
        return ConfigError(self.lines(problems))

    def validation_error(self, errors: list[Any], raw: dict[str, Any]) -> ConfigError:
        return self.error(
            [_describe(err, raw, self._model, self._provider_types) for err in errors]
        )


def _format_path(path: KeyPath) -> str:
    if not path:
        return ""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"{text}: "


def _describe(
    err: Any, raw: dict[str, Any], model: type[pydantic.BaseModel], provider_types: list[str]
) -> tuple[KeyPath, str]:
    tagged: KeyPath = tuple(err["loc"])
    # pydantic names the provider variant it tried (provider.ssh.head_ip): not a key.
    provider_variant = tagged[:1] == ("provider",) and len(tagged) > 1
    path = tagged[:1] + tagged[2:] if provider_variant else tagged
    kind = err["type"]
    if kind == "extra_forbidden":
        hint = suggest(str(path[-1]), _allowed_keys(model, tagged[:-1]))
        return path, f"unknown key{hint}"
    if kind == "missing":
        message = f"missing required key '{path[-1]}'"
        types = raw.get("available_node_types")
        if path == ("head_node_type",) and isinstance(types, dict) and types:
            message += f" (one of: {', '.join(map(str, types))})"
        return path[:-1], message
    if kind == "string_pattern_mismatch" and path == ("cluster_name",):
        return path, (
            "use only letters, digits, '-', '_' and '.', starting with a letter or digit "
            f"(got {err['input']!r})"
        )
    if kind == "union_tag_not_found":
        return path, "missing required key 'type'"
    if kind == "union_tag_invalid":
        path, err = (*path, "type"), {**err, "input": err["ctx"]["tag"]}
    if path == ("provider", "type"):
        expected = ", ".join(provider_types)
        value = err.get("input")
        hint = suggest(str(value), provider_types) if isinstance(value, str) else ""
        return path, f"unknown provider type {value!r} (expected one of: {expected}){hint}"
    if kind == "value_error":  # a validator's own message, which names the value
        return path, str(err["ctx"]["error"])
    message = re.sub(r" or instance of \w+", "", err["msg"])  # pydantic's class names
    message = message[0].lower() + message[1:]
    if kind == "list_type":
        message += " (write a YAML list: one '- item' per line)"
    if kind not in ("dict_type", "list_type", "model_type") and "input" in err:
        message += f" (got {err['input']!r})"
    return path, message


def suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


@functools.cache
def _schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _allowed_keys(model: type[pydantic.BaseModel], path: KeyPath) -> list[str]:
    """Keys the model's schema allows in the mapping at `path`."""
    root = _schema(model)
    defs = root.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while True:
            if "$ref" in node:
                node = defs[node["$ref"].rsplit("/", 1)[-1]]
            elif "anyOf" in node:
                objects = [resolve(o) for o in node["anyOf"] if o.get("type") != "null"]
                node = objects[0] if objects else {}
            else:
                return node

    node = resolve(root)
    for part in path:
        variants = node.get("discriminator", {}).get("mapping", {})
        if part in variants:  # a tagged union's member, named by its tag
            node = resolve({"$ref": variants[part]})
        elif part in node.get("properties", {}):
            node = resolve(node["properties"][part])
        elif isinstance(node.get("additionalProperties"), dict):
            node = resolve(node["additionalProperties"])
        elif "items" in node:
            node = resolve(node["items"])
        else:
            return []
    return list(node.get("properties", {}))
