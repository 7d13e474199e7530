"""rayctl's tags as GCE labels, and GCE's rules for labels (no SDK here: validation uses it).

GCE label keys and values are at most 63 characters of lowercase letters, digits, '_' and
'-' (keys start with a letter). rayctl's tag values are free text (cluster names with capitals
or dots, a failed bootstrap's output), so each value is encoded to fit: lowercase letters,
digits and '-' stay as they are, any other byte of its UTF-8 becomes '_' and two hex digits
(`De.v` -> `_44e_2ev`). The encoding is one-to-one, so a label filter on an encoded value
finds exactly the nodes with that tag. A value longer than 63 characters once encoded goes on
in continuation labels `KEY--1`, `KEY--2`, ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX = 63
MAX_LABELS = 64  # per resource
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_KEEP = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_MORE = "--"  # continuation labels: KEY--1, KEY--2, ...


def key_problem(key: str) -> str | None:
    """Why `key` is not a GCE label key, or None."""
    if _KEY.match(key):
        return None
    return (
        f"label key '{key}' breaks GCE's rules: start with a lowercase letter, then at most "
        "62 lowercase letters, digits, '_' or '-'"
    )


def value_problem(value: str) -> str | None:
    """Why `value` is not a GCE label value, or None."""
    if _VALUE.match(value):
        return None
    return (
        f"label value '{value}' breaks GCE's rules: at most 63 lowercase letters, digits, "
        "'_' or '-'"
    )


def encode_value(value: str) -> str:
    return "".join(c if c in _KEEP else "".join(f"_{b:02x}" for b in c.encode()) for c in value)


def decode_value(value: str) -> str:
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "_" and i + 3 <= len(value):
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out += value[i].encode()
            i += 1
    return out.decode(errors="replace")


def to_labels(tags: Mapping[str, str]) -> dict[str, str]:
    """rayctl's tags as labels; every key must already be a valid label key. An emptied
    long value clears its continuation labels too (as empty values)."""
    labels: dict[str, str] = {}
    for key, value in tags.items():
        encoded = encode_value(value)
        chunks = [encoded[i : i + MAX] for i in range(0, len(encoded), MAX)] or [""]
        labels[key] = chunks[0]
        for n, chunk in enumerate(chunks[1:], start=1):
            labels[f"{key[: MAX - 4]}{_MORE}{n}"] = chunk
    return labels


def from_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The tags behind `labels` (continuations joined, other labels decoded as they are)."""
    tags: dict[str, str] = {}
    for key, value in labels.items():
        if _MORE in key:
            continue
        parts = [value]
        n = 1
        while (more := labels.get(f"{key[: MAX - 4]}{_MORE}{n}")) is not None:
            parts.append(more)
            n += 1
        tags[key] = decode_value("".join(parts))
    return tags


def merged(current: Mapping[str, str], tags: Mapping[str, str]) -> dict[str, str]:
    """`current` labels with `tags` set: a tag's stale continuations are dropped."""
    new = to_labels(tags)
    stale = {k for k in current if _MORE in k and k.split(_MORE)[0] in {t[: MAX - 4] for t in tags}}
    return {**{k: v for k, v in current.items() if k not in stale}, **new}
