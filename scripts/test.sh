#!/usr/bin/env bash
# Set up .venv with rayctl and its test tools, then run the linters and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# The on-prem tests run real sshd hosts in network namespaces: they need sshd, an ssh client,
# rsync, iproute2 and root (CI is root; elsewhere those tests skip and say why); tmux is the
# terminal in which the live view of `up` and `down` is tested; docker mode's tests need podman.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=""
    [ -x /usr/sbin/sshd ] || need="$need openssh-server"
    command -v ssh >/dev/null || need="$need openssh-client"
    command -v rsync >/dev/null || need="$need rsync"
    command -v ip >/dev/null || need="$need iproute2"
    command -v tmux >/dev/null || need="$need tmux"
    [ -x /usr/bin/python3 ] || need="$need python3"
    # Docker mode's tests run real containers with rootful podman (runc: crun refuses
    # hybrid cgroups; catatonit for --init); tests/podman.py writes their configuration.
    command -v podman >/dev/null || need="$need podman"
    command -v runc >/dev/null || need="$need runc"
    [ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null || need="$need catatonit"
    # ... and log in to a real private registry (tests/registry.py runs it on loopback).
    [ -x /usr/bin/docker-registry ] || need="$need docker-registry"
    if [ -n "$need" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
    fi
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache
# Test files run side by side (much of an end-to-end test's time is waiting on clusters), a
# file's tests in one worker (--dist loadfile: they share its fixtures and fixed subnets).
exec .venv/bin/pytest -n "${RAYCTL_TEST_WORKERS:-2}" --dist loadfile "$@"
