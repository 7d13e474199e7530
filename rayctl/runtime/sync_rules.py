"""Which files a sync skips, the way rsync decides it, so that every transfer path agrees.

`exclude` patterns are rsync `--exclude` rules; `filters` names per-directory filter files
(Ray's `rsync_filter`, e.g. ".gitignore") read like rsync's `--filter 'dir-merge,- NAME'`:
each such file found in the synced tree adds exclude rules for its directory and below.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    base: str  # the directory (relative to the sync root, "" for the root) the rule applies in
    regex: re.Pattern[str]
    anchored: bool  # a leading "/": matched against the whole path below `base`
    dir_only: bool  # a trailing "/": matches directories only

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not rel.startswith(self.base + "/"):
                return False
            rel = rel[len(self.base) + 1 :]
        if self.anchored:
            return self.regex.fullmatch(rel) is not None
        return self.regex.search(rel) is not None


def _glob_to_regex(glob: str) -> str:
    """rsync wildcards: `*` stays within one path component, `**` crosses them."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")  # like rsync's wildmatch, "**/" also matches no directory
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        elif c == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_rule(pattern: str, base: str = "") -> Rule | None:
    """One exclude pattern (None if empty). Without a "/" it matches a name at any depth (like
    fnmatch on each path component); with one inside, the tail of the path."""
    dir_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    anchored = pattern.startswith("/")
    pattern = pattern.lstrip("/")
    if not pattern:
        return None
    body = _glob_to_regex(pattern)
    regex = re.compile(body if anchored else f"(?:^|/){body}$")
    return Rule(base, regex, anchored, dir_only)


def _file_rule(line: str, base: str) -> Rule | None:
    # A "!" line would re-include (gitignore) or clear the list (rsync): not supported, skipped,
    # so such a filter file may exclude slightly more than git would.
    if not line.strip() or line.startswith(("#", "!")):
        return None
    return parse_rule(line, base)


class SyncRules:
    """The rules for one local tree: command-line excludes plus the filter files found in it."""

    def __init__(
        self, root: str | Path, exclude: Sequence[str] = (), filters: Sequence[str] = ()
    ) -> None:
        self.root = Path(root)
        self._filters = tuple(filters)
        self._excludes = tuple(r for p in exclude if (r := parse_rule(p)) is not None)
        self._by_dir: dict[str, tuple[Rule, ...]] = {}

    def _rules(self, rel_dir: str) -> tuple[Rule, ...]:
        if rel_dir not in self._by_dir:
            inherited = self._rules(posixpath.dirname(rel_dir)) if rel_dir else self._excludes
            own: list[Rule] = []
            for name in self._filters:
                try:
                    text = (self.root / rel_dir / name).read_text(errors="replace")
                except OSError:  # absent (the usual case), or not a readable file
                    continue
                own += [r for line in text.splitlines() if (r := _file_rule(line, rel_dir))]
            self._by_dir[rel_dir] = inherited + tuple(own)
        return self._by_dir[rel_dir]

    def excluded(self, rel: str, is_dir: bool) -> bool:
        """`rel` is a "/"-separated path relative to the root."""
        return any(rule.matches(rel, is_dir) for rule in self._rules(posixpath.dirname(rel)))

    def ignore(self, directory: str, names: list[str]) -> set[str]:
        """A shutil.copytree `ignore` callback."""
        rel_dir = Path(os.path.relpath(directory, self.root)).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        return {
            name
            for name in names
            if self.excluded(posixpath.join(rel_dir, name), os.path.isdir(Path(directory, name)))
        }

    def walk(self) -> Iterator[tuple[str, Path]]:
        """Every entry not excluded, parents before children, as (relative path, local path).
        Symlinks are yielded, not followed."""
        pending = [""]
        while pending:
            rel_dir = pending.pop()
            with os.scandir(self.root / rel_dir) as entries:
                found = sorted(entries, key=lambda e: e.name)
            for entry in found:
                rel = posixpath.join(rel_dir, entry.name)
                is_dir = entry.is_dir(follow_symlinks=False)
                if self.excluded(rel, is_dir):
                    continue
                yield rel, Path(entry.path)
                if is_dir:
                    pending.append(rel)
