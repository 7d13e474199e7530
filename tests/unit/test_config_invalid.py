"""Invalid cluster configs: `validate` and `up` both refuse them with exit code 2, name the
file and the line a human would look at, say what is wrong, never show a traceback, and
create nothing under RAYCTL_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rayctl.ops.up
from rayctl.cli.app import run


class KnownProblem(AssertionError):
    """The config was refused badly: wrong line, missing wording, or accepted outright.
    Cases marked xfail expect exactly this failure and no other."""


def case(case_id: str, text: str, line: int, fragment: str, *, bug: str | None = None):
    marks = [pytest.mark.xfail(reason=bug, strict=True, raises=KnownProblem)] if bug else []
    return pytest.param(case_id, text, line, fragment, id=case_id, marks=marks)


LOCAL = "provider:\n  type: local\n"
# Ray's on-prem form: `type: local` with head_ip is the ssh provider.
ONPREM = "provider:\n  type: local\n  head_ip: 10.0.0.2\n"
AWS = "provider:\n  type: aws\n  region: us-west-2\n  ssh_source_cidrs: [203.0.113.7/32]\n"
AWS_TYPE = "available_node_types:\n  head:\n    node_config:\n      InstanceType: m5.large\n"

CONTEXT_DROPPED = (
    "YAML error reported at PyYAML's problem_mark (where parsing gave up: the next line or "
    "past the end of the file); the context_mark (where the unclosed construct starts) and "
    "its 'while parsing/scanning ...' context are dropped"
)

# (id, yaml_text, expected_line, expected_fragment)
CASES = [
    # --- YAML syntax -------------------------------------------------------------------
    case(
        "yaml-unclosed-flow-mapping",
        "cluster_name: x\nprovider: {type: local\nmax_workers: 2\n",
        2,
        "invalid YAML",
    ),
    case(
        "yaml-unclosed-flow-list-at-eof",
        LOCAL + "setup_commands: [echo hi, echo there\n",
        3,
        "invalid YAML",
    ),
    case(
        "yaml-unclosed-quote",
        LOCAL + 'cluster_name: "abc\nmax_workers: 2\n',
        3,
        "invalid YAML",
    ),
    case("yaml-bad-indentation", LOCAL + " max_workers: 2\n", 3, "invalid YAML"),
    case(
        "yaml-bad-indentation-nested",
        "cluster_name: x\nprovider:\n    type: local\n  max_workers: 1\n",
        4,
        "invalid YAML",
    ),
    case("yaml-tab-indentation", "provider:\n\ttype: local\n", 2, r"found character '\t'"),
    case("yaml-two-documents", LOCAL + "---\nmax_workers: 2\n", 3, "another document"),
    case(
        "yaml-merge-key",
        "base: &b\n  type: local\nprovider:\n  <<: *b\n",
        4,
        "merge keys (<<) are not supported",
    ),
    case(
        "duplicate-top-level-key",
        "cluster_name: a\n" + LOCAL + "cluster_name: b\n",
        4,
        "duplicate key 'cluster_name'",
    ),
    case(
        "duplicate-key-in-node-type",
        LOCAL + "available_node_types:\n  head:\n    min_workers: 0\n    min_workers: 1\n"
        "head_node_type: head\n",
        6,
        "duplicate key 'min_workers'",
    ),
    case(
        "duplicate-node-type-name",
        LOCAL + "available_node_types:\n  head: {}\n  head: {}\nhead_node_type: head\n",
        5,
        "duplicate key 'head'",
    ),
    # --- shape of the document ---------------------------------------------------------
    case("empty-file", "", 1, "the config is empty"),
    case("only-a-comment", "# nothing here yet\n", 1, "the config is empty"),
    case("top-level-list", "- provider\n- local\n", 1, "top level must be a mapping"),
    case("top-level-scalar", "hello\n", 1, "top level must be a mapping"),
    # --- unknown and misspelt keys -----------------------------------------------------
    case("unknown-top-level-key", LOCAL + "frobnicate: 1\n", 3, "frobnicate: unknown key"),
    case("misspelt-max_worker", LOCAL + "max_worker: 3\n", 3, "did you mean 'max_workers'"),
    case(
        "misspelt-idle_timeout_minute",
        LOCAL + "idle_timeout_minute: 3\n",
        3,
        "did you mean 'idle_timeout_minutes'",
    ),
    case(
        "misspelt-setup_command",
        LOCAL + "setup_command:\n  - echo hi\n",
        3,
        "did you mean 'setup_commands'",
    ),
    case(
        "misspelt-head_setup_command",
        LOCAL + "head_setup_command: []\n",
        3,
        "did you mean 'head_setup_commands'",
    ),
    case(
        "misspelt-available_node_type",
        LOCAL + "available_node_type:\n  head: {}\nhead_node_type: head\n",
        3,
        "did you mean 'available_node_types'",
    ),
    case("misspelt-provider", "provier:\n  type: local\n", 1, "did you mean 'provider'"),
    case(
        "misspelt-key-in-provider",
        LOCAL + "  typ: local\n",
        3,
        "provider.typ: unknown key; did you mean 'type'",
    ),
    case(
        "misspelt-key-in-auth",
        LOCAL + "auth:\n  ssh_usr: ubuntu\n",
        4,
        "auth.ssh_usr: unknown key; did you mean 'ssh_user'",
    ),
    case(
        "misspelt-key-in-node-type",
        LOCAL + "available_node_types:\n  head:\n    resources: {CPU: 1}\n    min_worker: 0\n"
        "head_node_type: head\n",
        6,
        "available_node_types.head.min_worker: unknown key; did you mean 'min_workers'",
    ),
    case(
        "misspelt-resources-in-node-type",
        LOCAL + "available_node_types:\n  head:\n    resource: {CPU: 1}\nhead_node_type: head\n",
        5,
        "did you mean 'resources'",
    ),
    case(
        "misspelt-key-in-rayctl",
        LOCAL + "rayctl:\n  runtim:\n    python: /usr/bin/python3\n",
        4,
        "rayctl.runtim: unknown key; did you mean 'runtime'",
    ),
    case(
        "misspelt-key-in-rayctl-runtime",
        LOCAL + "rayctl:\n  runtime:\n    pyhton: /usr/bin/python3\n",
        5,
        "rayctl.runtime.pyhton: unknown key; did you mean 'python'",
    ),
    case(
        "misspelt-key-in-docker",
        LOCAL + "docker:\n  imag: rayproject/ray\n",
        4,
        "docker.imag: unknown key; did you mean 'image'",
    ),
    # --- wrong types -------------------------------------------------------------------
    case("max_workers-string", LOCAL + "max_workers: many\n", 3, "(got 'many')"),
    case(
        "max_workers-bool",
        LOCAL + "max_workers: true\n",
        3,
        "max_workers",
    ),
    case("upscaling_speed-list", LOCAL + "upscaling_speed: [1]\n", 3, "valid number (got [1])"),
    case(
        "setup_commands-string",
        LOCAL + "setup_commands: echo hi\n",
        3,
        "setup_commands: input should be a valid list",
    ),
    case(
        "setup_commands-item-not-string",
        LOCAL + "setup_commands:\n  - echo hi\n  - 3\n",
        5,
        "setup_commands[1]: input should be a valid string (got 3)",
    ),
    case(
        "resources-value-not-number",
        LOCAL + "available_node_types:\n  head:\n    resources: {CPU: x}\nhead_node_type: head\n",
        5,
        "available_node_types.head.resources.CPU: input should be a valid number",
    ),
    case(
        "labels-value-mapping",
        LOCAL + "available_node_types:\n  head:\n    labels:\n      zone:\n        a: b\n"
        "head_node_type: head\n",
        6,
        "available_node_types.head.labels.zone: input should be a valid string",
    ),
    case(
        "min_workers-float",
        LOCAL + "available_node_types:\n  head: {}\n  w:\n    min_workers: 1.5\n"
        "head_node_type: head\n",
        6,
        "input should be a valid integer (got 1.5)",
    ),
    case(
        "cluster_name-with-space",
        "cluster_name: my cluster\n" + LOCAL,
        1,
        "(got 'my cluster')",
    ),
    case("cluster_name-with-slash", "cluster_name: a/b\n" + LOCAL, 1, "(got 'a/b')"),
    case(
        "cluster_name-too-long",
        "cluster_name: " + "a" * 41 + "\n" + LOCAL,
        1,
        "at most 40 characters",
    ),
    case(
        "available_node_types-list",
        LOCAL + "available_node_types:\n  - head\n  - worker\nhead_node_type: head\n",
        3,
        "available_node_types: input should be a valid dictionary",
    ),
    case(
        "node-type-not-mapping",
        LOCAL + "available_node_types:\n  head: {}\n  worker: 3\nhead_node_type: head\n",
        5,
        "available_node_types.worker: input should be a valid dictionary",
    ),
    case(
        "node-type-empty-value",
        LOCAL + "available_node_types:\n  head:\nhead_node_type: head\n",
        4,
        "available_node_types.head: input should be a valid dictionary",
    ),
    # --- out-of-range numbers ----------------------------------------------------------
    case("max_workers-negative", LOCAL + "max_workers: -1\n", 3, "greater than or equal to 0"),
    case(
        "min_workers-negative",
        LOCAL + "available_node_types:\n  head: {}\n  w:\n    min_workers: -2\n"
        "head_node_type: head\n",
        6,
        "available_node_types.w.min_workers: input should be greater than or equal to 0",
    ),
    case(
        "idle_timeout_minutes-negative",
        LOCAL + "idle_timeout_minutes: -5\n",
        3,
        "idle_timeout_minutes: input should be greater than or equal to 0 (got -5)",
    ),
    case(
        "resources-negative",
        LOCAL + "available_node_types:\n  head:\n    resources:\n      CPU: -1\n"
        "head_node_type: head\n",
        6,
        "greater than or equal to 0 (got -1)",
    ),
    case(
        "upscaling_speed-zero",
        LOCAL + "upscaling_speed: 0\n",
        3,
        "upscaling_speed: input should be greater than 0",
    ),
    # --- rules across keys -------------------------------------------------------------
    case(
        "node-type-min-above-max",
        LOCAL + "max_workers: 10\navailable_node_types:\n  head: {}\n  w:\n    min_workers: 3\n"
        "    max_workers: 2\nhead_node_type: head\n",
        7,
        "min_workers (3) is greater than max_workers (2)",
    ),
    case(
        "sum-of-min_workers-above-max_workers",
        LOCAL + "max_workers: 2\navailable_node_types:\n  head: {}\n  a:\n    min_workers: 2\n"
        "  b:\n    min_workers: 1\nhead_node_type: head\n",
        3,
        "min_workers add up to 3, more than max_workers (2)",
    ),
    case(
        "head_node_type-not-a-node-type",
        LOCAL + "available_node_types:\n  head.node: {}\n  worker: {}\nhead_node_type: head.nod\n",
        6,
        "'head.nod' is not in available_node_types; did you mean 'head.node'",
    ),
    case(
        "head_node_type-missing-with-own-node-types",
        LOCAL + "available_node_types:\n  head: {}\n  worker: {}\n",
        1,
        "head_node_type",
    ),
    # --- provider ----------------------------------------------------------------------
    case(
        "provider-type-misspelt",
        "provider:\n  type: locl\n",
        2,
        "unknown provider type 'locl' (expected one of: local, ssh, aws, gcp, azure, fake); "
        "did you mean 'local'",
    ),
    case("provider-missing", "cluster_name: x\n", 1, "missing required key 'provider'"),
    case(
        "provider-type-missing",
        "provider: {}\n",
        1,
        "provider: missing required key 'type'",
    ),
    # --- file mounts and commands ------------------------------------------------------
    case(
        "file_mounts-source-missing",
        LOCAL + "file_mounts:\n  ~/data: ./does-not-exist\n",
        4,
        "local path './does-not-exist' does not exist",
    ),
    case(
        "file_mounts-absolute-target-local",
        LOCAL + "file_mounts:\n  /opt/data: .\n",
        4,
        "file_mounts./opt/data: local nodes share this machine: use a '~/...' target",
    ),
    case(
        "ray-stop-in-head_start_ray_commands",
        LOCAL
        + "head_start_ray_commands:\n  - ray start --block --head\n"
        + "  - ray stop && ray start --block --head\n",
        5,
        "head_start_ray_commands[1]: 'ray stop' would stop every Ray process on this machine "
        "(local nodes are processes of it): remove it",
    ),
    case(
        "ray-stop-in-worker_start_ray_commands",
        LOCAL
        + "worker_start_ray_commands:\n  - ray stop\n"
        + "  - exec ray start --block --address=$RAY_HEAD_IP:6379\n",
        4,
        "worker_start_ray_commands[0]: 'ray stop'",
    ),
    # Ray's example start commands daemonize Ray: a local node has no PID of its own then.
    case(
        "ray-start-without-block-in-head_start_ray_commands",
        LOCAL
        + "head_start_ray_commands:\n  - echo starting\n"
        + "  - ulimit -n 65536; ray start --head --port=6379\n",
        5,
        "head_start_ray_commands[1]: `ray start` without --block leaves Ray running in the "
        "background, where rayctl cannot tell this node's Ray from other local nodes': add "
        "--block (e.g. `exec ray start --block ...`)",
    ),
    case(
        "ray-start-without-block-in-worker_start_ray_commands",
        LOCAL
        + "worker_start_ray_commands:\n  - /opt/ray/bin/ray start --address=$RAY_HEAD_IP:6379\n",
        4,
        "worker_start_ray_commands[0]: `ray start` without --block",
    ),
    # --- docker ------------------------------------------------------------------------
    case(
        "docker-mode-without-image",
        LOCAL + "docker:\n  container_name: ray_container\n",
        3,
        "docker: docker mode (container_name is set) needs an image for head nodes of "
        "'ray.head.default': set image (or head_image)",
    ),
    case(
        "docker-mode-worker-type-without-image",
        LOCAL + "docker:\n  container_name: c\n  head_image: img\n"
        "available_node_types:\n  head: {}\n  w:\n    max_workers: 1\n"
        "    docker:\n      head_image: other\n"
        "head_node_type: head\n",
        10,
        "available_node_types.w.docker: docker mode (container_name is set) needs an image "
        "for worker nodes of 'w': set image (or worker_image)",
    ),
    # --- ssh provider (and Ray's on-prem form of it) --------------------------------------
    case(
        "ssh-head-ip-missing",
        "provider:\n  type: ssh\n  worker_ips: [10.0.0.3]\nauth: {ssh_user: u}\n",
        1,
        "provider: missing required key 'head_ip'",
    ),
    case(
        "ssh-head-also-worker",
        ONPREM + "  worker_ips: [10.0.0.3, 10.0.0.2]\n",
        4,
        "10.0.0.2 is the head_ip; list it once",
    ),
    case(
        "ssh-worker-twice",
        ONPREM + "  worker_ips: [10.0.0.3, 10.0.0.3]\n",
        4,
        "10.0.0.3 is listed twice",
    ),
    case(
        "ssh-no-user",
        "provider:\n  type: local\n  head_ip: 10.0.0.2\n",
        1,
        "needs auth.ssh_user",
    ),
    case(
        "ssh-min-workers-above-pool",
        ONPREM
        + "  worker_ips: [10.0.0.3]\n"
        + "available_node_types:\n  h: {}\n  w: {min_workers: 2}\nhead_node_type: h\n",
        4,
        "min_workers add up to 2, more than the 1 host(s) in worker_ips",
    ),
    case(
        "ssh-coordinator-without-max-workers",
        "provider:\n  type: local\n  coordinator_address: 10.0.0.9:1234\nauth: {ssh_user: u}\n",
        1,
        "Ray needs max_workers with a coordinator_address",
    ),
    # --- Ray's format before 2.0 -------------------------------------------------------
    case(
        "legacy-head-node",
        LOCAL + "head_node:\n  InstanceType: m5.large\n",
        3,
        "head_node: Ray dropped head_node/worker_nodes in 2.0: move them into "
        "available_node_types.<name>.node_config and set head_node_type",
    ),
    case(
        "legacy-worker-nodes",
        AWS + "worker_nodes: {InstanceType: m5.large}\n",
        5,
        "worker_nodes: Ray dropped head_node/worker_nodes in 2.0",
    ),
    # --- aws provider ------------------------------------------------------------------
    case(
        "aws-region-missing",
        "provider:\n  type: aws\n  ssh_source_cidrs: [203.0.113.7/32]\n",
        1,
        "provider: missing required key 'region'",
    ),
    case(
        "aws-ssh-source-not-a-cidr",
        AWS.replace("203.0.113.7/32", "10.0.0.1/24"),
        4,
        "provider.ssh_source_cidrs[0]: not a CIDR block",
    ),
    case(
        "aws-zone-in-another-region",
        AWS + "  availability_zone: us-west-2a,us-east-1b\n",
        5,
        "zone 'us-east-1b' (entry 2) is not in region us-west-2",
    ),
    case(
        "gcp-no-zone",
        "provider:\n  type: gcp\n  region: us-east1\n  project_id: p\n",
        1,
        "provider: no zone: set provider.availability_zone to a zone of us-east1",
    ),
    case(
        "aws-misspelt-cache_stopped_nodes",
        AWS + "  cache_stopped_node: false\n",
        5,
        "did you mean 'cache_stopped_nodes'",
    ),
    case(
        "aws-ray-ports-open-to-the-internet",
        AWS
        + "  security_group:\n    IpPermissions:\n"
        + "      - {IpProtocol: tcp, FromPort: 8000, ToPort: 9000,\n"
        + "         IpRanges: [{CidrIp: 0.0.0.0/0}]}\n",
        7,
        "opens Ray's port(s) 8265 to public addresses (0.0.0.0/0)",
    ),
    case(
        "aws-all-traffic-open-to-the-internet",
        AWS
        + "  security_group:\n    IpPermissions:\n"
        + "      - {IpProtocol: '-1', Ipv6Ranges: [{CidrIpv6: '::/0'}]}\n",
        7,
        "opens Ray's port(s) 6379-6384, 8265, 10001-19999, 52365 to public addresses (::/0)",
    ),
    case(
        "aws-instance-type-missing",
        AWS + "available_node_types:\n  head:\n    node_config: {ImageId: ami-1}\n"
        "head_node_type: head\n",
        7,
        "available_node_types.head.node_config: needs an InstanceType",
    ),
    case(
        "aws-min-count-in-node-config",
        AWS + AWS_TYPE + "      MinCount: 2\nhead_node_type: head\n",
        9,
        "rayctl sets MinCount and MaxCount",
    ),
    case(
        "aws-subnet-id-not-subnet-ids",
        AWS + AWS_TYPE + "      SubnetId: subnet-1\nhead_node_type: head\n",
        9,
        "use SubnetIds (a list)",
    ),
    case(
        "aws-subnet-ids-not-a-list",
        AWS + AWS_TYPE + "      SubnetIds: subnet-1\nhead_node_type: head\n",
        9,
        "SubnetIds: must be a non-empty list of ids",
    ),
    case(
        "aws-network-interfaces-and-subnet-ids",
        AWS
        + AWS_TYPE
        + "      SubnetIds: [subnet-1]\n"
        + "      NetworkInterfaces: [{DeviceIndex: 0, SubnetId: subnet-1, Groups: [sg-1]}]\n"
        + "head_node_type: head\n",
        9,
        "SubnetIds: with NetworkInterfaces, give subnets and security groups in each interface",
    ),
    case(
        "aws-network-interface-without-groups",
        AWS
        + AWS_TYPE
        + "      NetworkInterfaces:\n        - {DeviceIndex: 0, SubnetId: subnet-1}\n"
        + "head_node_type: head\n",
        10,
        "NetworkInterfaces[0]: needs Groups",
    ),
    case(
        "aws-key-name-without-private-key",
        AWS + AWS_TYPE + "      KeyName: my-key\nhead_node_type: head\n",
        9,
        "a KeyName needs auth.ssh_private_key",
    ),
    case(
        "aws-no-ssh-user",
        AWS + "auth:\n  ssh_user: null\n",
        6,
        "the aws provider needs auth.ssh_user",
    ),
]


@pytest.fixture
def rayctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "rayctl-home"
    home.mkdir()
    monkeypatch.setenv("RAYCTL_HOME", str(home))
    monkeypatch.delenv("RAYCTL_DEBUG", raising=False)

    def no_launch(*args: object, **kwargs: object) -> None:
        raise AssertionError("an invalid config reached the launcher")

    # Belt and braces: should a case ever validate, `up` must still not start anything.
    monkeypatch.setattr(rayctl.ops.up, "up", no_launch)
    return home


def check_refusal(stdout: str, stderr: str, code: int, line: int, fragment: str) -> None:
    assert "Traceback" not in stderr + stdout
    assert "internal error" not in stderr
    if code == 0:
        raise KnownProblem(f"the config was accepted:\n{stdout}")
    assert code == 2, stderr
    assert stdout == ""
    where = f"cluster.yaml:{line}:"
    mentioning = [text for text in stderr.splitlines() if fragment in text]
    if not mentioning:
        raise KnownProblem(f"no line of stderr says {fragment!r}:\n{stderr}")
    if not any(where in text for text in mentioning):
        raise KnownProblem(f"{fragment!r} is not reported at {where}\n{stderr}")
    assert where in stderr and fragment in stderr


@pytest.mark.parametrize(("case_id", "yaml_text", "expected_line", "expected_fragment"), CASES)
def test_invalid_config_is_refused_with_file_and_line(
    case_id: str,
    yaml_text: str,
    expected_line: int,
    expected_fragment: str,
    tmp_path: Path,
    rayctl_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml_text, encoding="utf-8")

    code = run(["validate", str(path)])
    validated = capsys.readouterr()
    check_refusal(validated.out, validated.err, code, expected_line, expected_fragment)

    code = run(["up", str(path), "--yes"])
    upped = capsys.readouterr()
    check_refusal(upped.out, upped.err, code, expected_line, expected_fragment)
    assert upped.err == validated.err  # `up` refuses with the same report, before any work

    assert list(rayctl_home.iterdir()) == []


def test_every_problem_is_reported_in_line_order(
    tmp_path: Path, rayctl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(LOCAL + "upscaling_speed: 0\nmax_worker: 3\n", encoding="utf-8")
    assert run(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{path}:3:1: upscaling_speed: input should be greater than 0 (got 0)",
        f"{path}:4:1: max_worker: unknown key; did you mean 'max_workers'?",
    ]


def test_missing_config_file_exits_2(
    tmp_path: Path, rayctl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nope.yaml"
    assert run(["validate", str(path)]) == 2
    assert run(["up", str(path), "--yes"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"{path}: no such file"] * 2
    assert list(rayctl_home.iterdir()) == []


def _console_script() -> str:
    beside = Path(sys.executable).parent / "rayctl"
    if beside.exists():
        return str(beside)
    found = shutil.which("rayctl")
    assert found, "the rayctl console script is not installed"
    return found


def test_console_script_reports_file_and_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text(LOCAL + "max_worker: 3\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "RAYCTL_DEBUG"}
    env["RAYCTL_HOME"] = str(home)
    result = subprocess.run(
        [_console_script(), "validate", "bad.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "bad.yaml:3:1: max_worker: unknown key; did you mean 'max_workers'?\n"
    assert "Traceback" not in result.stderr + result.stdout
    assert list(home.iterdir()) == []


def test_messages_name_the_fix(tmp_path: Path, cli, rayctl_home: Path) -> None:
    """Errors that say what to write instead, and no noise the user need not act on."""
    path = tmp_path / "cluster.yaml"

    def errors(text: str, *extra: str) -> list[str]:
        path.write_text(text)
        result = cli("validate", path, *extra)
        assert result.code == 2, result.text
        return [line.split(": ", 1)[1] for line in result.err.splitlines()]

    assert errors("provider:\n  type: locl\n") == [
        "provider.type: unknown provider type 'locl' (expected one of: local, ssh, aws, gcp, "
        "azure, fake); did you mean 'local'?"
    ]
    assert errors(LOCAL + "available_node_types:\n  head: {}\n  gpu: {}\n") == [
        "missing required key 'head_node_type' (one of: head, gpu)"
    ]
    assert errors(LOCAL + "setup_commands: echo hi\n") == [
        "setup_commands: input should be a valid list (write a YAML list: one '- item' per line)"
    ]
    assert errors(LOCAL + "  head_ip: 10.0.0.1\n  worker_ip: [10.0.0.2]\n") == [
        "provider.worker_ip: unknown key; did you mean 'worker_ips'?"
    ]
    path.write_text(LOCAL)
    flag = cli("validate", path), cli("up", path, "-n", "a b", "--yes")
    assert flag[0].code == 0 and flag[1].code == 2
    assert flag[1].err.startswith("--cluster-name: use only letters, digits")
    assert not rayctl_home.exists() or not any(rayctl_home.iterdir())
