"""LocalRunner: commands run with bash inside the node's home; files land under it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rayctl.runtime.runner import TAIL_LINES, LocalRunner, NodeUnreachable, TransferError
from rayctl.runtime.sync_rules import SyncRules


def test_run_reports_exit_code_streams_and_keeps_the_tail(tmp_path: Path):
    runner = LocalRunner(tmp_path, env={"GREETING": "hi"})
    lines: list[str] = []
    result = runner.run(
        'for i in $(seq 1 50); do echo "$GREETING $i"; done; echo oops >&2; exit 4',
        stream=lines.append,
    )
    assert result.exit_code == 4 and not result.ok
    assert lines[0] == "hi 1" and lines[-1] == "oops" and len(lines) == 51
    assert result.tail.splitlines() == lines[-TAIL_LINES:]


def test_run_uses_the_node_home_and_extra_env(tmp_path: Path):
    home = tmp_path
    result = LocalRunner(home).run('echo "$HOME|$PWD|$EXTRA"', env={"EXTRA": "x"})
    assert result.ok and result.tail == f"{home}|{home}|x"


def test_timeout_kills_the_command_and_its_children(tmp_path: Path):
    marker = tmp_path / "survived"
    started = time.monotonic()
    result = LocalRunner(tmp_path).run(f"(sleep 3; touch {marker}) & sleep 30", timeout_s=0.5)
    assert result.exit_code == 124 and "timed out" in result.tail
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists()  # the background child died with its group


def test_put_and_sync_expand_tilde_into_the_node_home(tmp_path: Path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "skip.pyc").write_text("junk")
    single = tmp_path / "one.txt"
    single.write_text("one")
    home = tmp_path / "node"
    home.mkdir()
    runner = LocalRunner(home)
    runner.sync(str(src), "~/code", exclude=["*.pyc"])
    runner.put(str(single), "~/deep/dir/one.txt")
    assert (home / "code" / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert not (home / "code" / "skip.pyc").exists()
    assert (home / "deep" / "dir" / "one.txt").read_text() == "one"


def test_get_copies_from_the_node_home(tmp_path: Path):
    home = tmp_path / "node"
    (home / "out" / "sub").mkdir(parents=True)
    (home / "out" / "sub" / "r.txt").write_text("result")
    runner = LocalRunner(home)
    runner.get("~/out", str(tmp_path / "got"))
    assert (tmp_path / "got" / "sub" / "r.txt").read_text() == "result"
    runner.get("~/out/sub/r.txt", str(tmp_path / "a" / "b.txt"))
    assert (tmp_path / "a" / "b.txt").read_text() == "result"
    with pytest.raises(TransferError, match="does not exist"):
        runner.get("~/nope", str(tmp_path / "x"))


def test_a_node_whose_home_is_gone_is_unreachable_and_not_recreated(tmp_path: Path):
    runner = LocalRunner(tmp_path / "terminated")
    for action in (
        lambda: runner.run("true"),
        lambda: runner.put(__file__, "~/x.py"),
        lambda: runner.sync(str(tmp_path), "~/d"),
        lambda: runner.interactive("true"),
    ):
        with pytest.raises(NodeUnreachable, match="does not exist"):
            action()
    assert not (tmp_path / "terminated").exists()


def test_sync_honours_filter_files_like_rsync_dir_merge(tmp_path: Path):
    src = tmp_path / "src"
    files = {
        ".gitignore": "# build output\n\n*.log\n/dist/\ntmp/\n!keep.log\n",
        "keep.log": "negation is not supported: still excluded",
        "main.py": "",
        "dist/wheel.whl": "",
        "lib/dist/kept.txt": "/dist/ is anchored to the root's .gitignore",
        "lib/tmp": "a file: tmp/ matches directories only",
        "lib/tmp.d/x": "",
        "lib/.gitignore": "secret.txt\n/only_here.txt\n",
        "lib/secret.txt": "",
        "lib/deeper/secret.txt": "lib's patterns hold below lib too",
        "lib/deeper/only_here.txt": "but its anchored ones only in lib",
        "lib/only_here.txt": "",
        "secret.txt": "lib's patterns do not apply above lib",
        "other/tmp/cache": "",
        "other/.git/HEAD": "",
        "other/notes.md": "",
    }
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    home = tmp_path / "node"
    home.mkdir()
    LocalRunner(home).sync(str(src), "~/code", exclude=["**/.git", "*.md"], filters=[".gitignore"])
    synced = {p.relative_to(home / "code").as_posix() for p in (home / "code").rglob("*")}
    assert synced == {
        ".gitignore",
        "main.py",
        "lib",
        "lib/.gitignore",
        "lib/dist",
        "lib/dist/kept.txt",
        "lib/tmp",
        "lib/tmp.d",
        "lib/tmp.d/x",
        "lib/deeper",
        "lib/deeper/only_here.txt",
        "secret.txt",
        "other",
    }


def test_sync_without_filters_ignores_filter_files(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / ".gitignore").write_text("*.txt\n")
    (src / "a.txt").write_text("a")
    home = tmp_path / "node"
    home.mkdir()
    LocalRunner(home).sync(str(src), "~/code")
    assert (home / "code" / "a.txt").read_text() == "a"


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "excluded"),
    [
        ("*.pyc", "a/b/c.pyc", False, True),
        ("*.pyc", "a/b.pyc/c.py", False, False),  # names only: the parent is pruned instead
        ("b/*.py", "a/b/c.py", False, True),  # a "/" inside: matches the path's tail
        ("b/*.py", "a/b/d/c.py", False, False),  # "*" stays within one component
        ("a/**/c.py", "a/b/d/c.py", False, True),
        ("**/.git", ".git", True, True),
        ("/top", "top", False, True),
        ("/top", "x/top", False, False),
        ("cache/", "x/cache", False, False),
        ("cache/", "x/cache", True, True),
        ("[!a]b", "cb", False, True),
        ("[!a]b", "ab", False, False),
        ("/", "x", True, False),  # nothing left to match
    ],
)
def test_exclude_patterns_match_like_rsync(pattern, path, is_dir, excluded, tmp_path: Path):
    assert SyncRules(tmp_path, exclude=[pattern]).excluded(path, is_dir) is excluded
