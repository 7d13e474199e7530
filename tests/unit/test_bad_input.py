"""Crafted bad input, table by table: configs, demand files, files that are not files, job
ids and command lines. Each is refused with exit 2 and a message that says where (FILE:LINE:
COL: key.path: for a file) and what; never a traceback, a hang or silent acceptance, and
nothing is created under RAYCTL_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rayctl.config.yaml_positions import MAX_DEPTH

REPO = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = REPO / "cluster-configs" / "local.yaml"
RAYCTL = Path(sys.executable).parent / "rayctl"

LOCAL = "provider:\n  type: local\n"
ONPREM = (
    "# Ray's on-prem form\nauth: {ssh_user: u, ssh_private_key: /etc/hostname}\n"
    "provider:\n  type: local\n"
)
AWS = "provider:\n  type: aws\n  region: us-west-2\n  ssh_source_cidrs: [203.0.113.7/32]\n"
RULES = AWS + "  security_group:\n    IpPermissions:\n"  # a rule follows on line 7
SSH = "provider: {type: ssh, head_ip: 10.0.0.1}\nauth: {ssh_user: u}\n"
TYPES = "available_node_types:\n  h:\n    resources: {CPU: 1}\nhead_node_type: h\n"


def rule(text: str) -> str:
    return RULES + f"      - {{{text}}}\n"


def alias_bomb() -> str:
    """Under 300 bytes that would expand to 9**7 values."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return LOCAL + "\n".join(lines) + "\n"


def deep_aliases() -> str:
    """Each anchor nests the previous one a level deeper: shallow as written, deep in use."""
    lines = ["x0: &x0 [1]"] + [f"x{i}: &x{i} [*x{i - 1}]" for i in range(1, 2 * MAX_DEPTH)]
    return LOCAL + "\n".join(lines) + "\n"


# (id, config text, line, fragment): the first line of stderr must start with FILE:LINE:.
CONFIGS = [
    # Numbers that are not finite: they pass every bound and break arithmetic.
    (
        "cpu-inf",
        LOCAL + TYPES.replace("CPU: 1", "CPU: .inf"),
        5,
        "h.resources.CPU: input should be a finite number",
    ),
    (
        "custom-resource-nan",
        LOCAL + TYPES.replace("CPU: 1", "accel: .nan"),
        5,
        "resources.accel: input should be a finite number",
    ),
    (
        "cpu-minus-inf",
        LOCAL + TYPES.replace("CPU: 1", "CPU: -.inf"),
        5,
        "resources.CPU: input should be",
    ),
    (
        "upscaling-speed-inf",
        LOCAL + "upscaling_speed: .inf\n",
        3,
        "upscaling_speed: input should be a finite number",
    ),
    (
        "upscaling-speed-nan",
        LOCAL + "upscaling_speed: .NaN\n",
        3,
        "upscaling_speed: input should be a finite number",
    ),
    (
        "idle-timeout-nan",
        LOCAL + "idle_timeout_minutes: .nan\n",
        3,
        "idle_timeout_minutes: input should be a finite",
    ),
    (
        "type-idle-timeout-inf",
        LOCAL + TYPES.replace("resources: {CPU: 1}", "idle_timeout_s: .inf"),
        5,
        "h.idle_timeout_s: input should be a finite",
    ),
    (
        "max-workers-inf",
        LOCAL + "max_workers: .inf\n",
        3,
        "max_workers: input should be a valid integer",
    ),
    (
        "min-workers-nan",
        LOCAL + TYPES.replace("resources: {CPU: 1}", "min_workers: .nan"),
        5,
        "h.min_workers: input should be a valid integer",
    ),
    (
        "cost-inf",
        LOCAL + TYPES + "rayctl:\n  node_types:\n    h: {cost: .inf}\n",
        9,
        "rayctl.node_types.h.cost: input should be a finite",
    ),
    # YAML that would exhaust memory or the stack.
    (
        "recursive-alias-mapping",
        LOCAL + "metadata: &m\n  self: *m\n",
        4,
        "metadata.self: an alias refers to a value that contains it",
    ),
    (
        "recursive-alias-list",
        LOCAL + "setup_commands: &s [echo, *s]\n",
        3,
        "an alias refers to a value that contains it",
    ),
    ("alias-bomb", alias_bomb(), 3, "more than 100000 values once aliases are expanded"),
    (
        "deep-flow-nesting",
        LOCAL + "metadata: " + "[" * 3000 + "]" * 3000 + "\n",
        3,
        f"nested more than {MAX_DEPTH} levels deep",
    ),
    (
        "deep-block-nesting",
        LOCAL + "".join("  " * i + f"k{i}:\n" for i in range(200)),
        MAX_DEPTH + 2,
        "nested more than",
    ),
    (
        "deep-through-aliases",
        deep_aliases(),
        3,
        f"nested more than {MAX_DEPTH} levels deep",
    ),
    # Host addresses reach SSH, `ray start` and scripts: addresses or host names only.
    (
        "head-ip-shell",
        ONPREM + "  head_ip: '10.0.0.1;touch${IFS}/tmp/x;#'\n",
        5,
        "provider.head_ip: '10.0.0.1;touch${IFS}/tmp/x;#' is not an IP address or a host name",
    ),
    (
        "head-ip-command-substitution",
        ONPREM + "  head_ip: $(reboot)\n",
        5,
        "provider.head_ip: '$(reboot)' is not",
    ),
    (
        "head-ip-space",
        ONPREM + "  head_ip: 10.0.0.1 -p 2\n",
        5,
        "provider.head_ip: '10.0.0.1 -p 2' is not",
    ),
    ("head-ip-newline", ONPREM + '  head_ip: "10.0.0.1\\nreboot"\n', 5, "provider.head_ip:"),
    ("head-ip-empty", ONPREM + "  head_ip: ''\n", 5, "provider.head_ip: '' is not an IP address"),
    (
        "worker-ip-and",
        ONPREM + "  head_ip: 10.0.0.1\n  worker_ips: ['10.0.0.3 && rm -rf ~']\n",
        6,
        "provider.worker_ips[0]: '10.0.0.3 && rm -rf ~' is not",
    ),
    (
        "worker-ip-ssh-option",
        ONPREM + "  head_ip: 10.0.0.1\n  worker_ips: [-oProxyCommand=x]\n",
        6,
        "provider.worker_ips[0]: '-oProxyCommand=x' is not",
    ),
    (
        "worker-ip-scope-id",
        ONPREM + "  head_ip: 10.0.0.1\n  worker_ips: ['fe80::1%eth0;x']\n",
        6,
        "provider.worker_ips[0]: 'fe80::1%eth0;x' is not",
    ),
    (
        "worker-ip-long-label",
        ONPREM + f"  head_ip: 10.0.0.1\n  worker_ips: [{'a' * 64}.lan]\n",
        6,
        "provider.worker_ips[0]:",
    ),
    (
        "external-head-ip-backquote",
        ONPREM + "  head_ip: 10.0.0.1\n  external_head_ip: '`id`'\n",
        6,
        "provider.external_head_ip: '`id`' is not",
    ),
    # Security-group rules that let a public address reach a port Ray listens on.
    (
        "sg-two-halves",
        rule(
            "IpProtocol: tcp, FromPort: 6379, ToPort: 6379, "
            "IpRanges: [{CidrIp: 0.0.0.0/1}, {CidrIp: 128.0.0.0/1}]"
        ),
        7,
        "opens Ray's port(s) 6379 to public addresses (0.0.0.0/1)",
    ),
    (
        "sg-worker-ports",
        rule("IpProtocol: tcp, FromPort: 10002, ToPort: 19999, IpRanges: [{CidrIp: 0.0.0.0/0}]"),
        7,
        "port(s) 10002-19999 to public",
    ),
    (
        "sg-dashboard-agent",
        rule("IpProtocol: tcp, FromPort: 52365, ToPort: 52365, IpRanges: [{CidrIp: 0.0.0.0/0}]"),
        7,
        "port(s) 52365 to public",
    ),
    (
        "sg-all-traffic-ipv6",
        rule("IpProtocol: '-1', Ipv6Ranges: [{CidrIpv6: '0::/0'}]"),
        7,
        "port(s) 6379-6384, 8265, 10001-19999, 52365 to public addresses (::/0)",
    ),
    (
        "sg-pinned-node-manager",
        rule(
            "IpProtocol: tcp, FromPort: 6380, ToPort: 6380, IpRanges: [{CidrIp: 198.51.100.7/32}]"
        ),
        7,
        "port(s) 6380 to public",
    ),
    (
        "sg-range-ends-at-dashboard",
        rule("IpProtocol: tcp, FromPort: 8000, ToPort: 8265, IpRanges: [{CidrIp: 0.0.0.0/0}]"),
        7,
        "port(s) 8265 to public",
    ),
    (
        "sg-range-starts-at-last-worker-port",
        rule("IpProtocol: tcp, FromPort: 19999, ToPort: 20000, IpRanges: [{CidrIp: 0.0.0.0/0}]"),
        7,
        "port(s) 19999 to public",
    ),
    (
        "sg-tcp-without-ports",
        rule("IpProtocol: tcp, IpRanges: [{CidrIp: 0.0.0.0/0}]"),
        7,
        "port(s) 6379-6384, 8265, 10001-19999, 52365",
    ),
    (
        "sg-protocol-number",
        rule("IpProtocol: '6', FromPort: 8265, ToPort: 8265, IpRanges: [{CidrIp: 0.0.0.0/0}]"),
        7,
        "port(s) 8265",
    ),
    (
        "sg-ports-minus-one",
        rule("IpProtocol: tcp, FromPort: -1, ToPort: -1, IpRanges: [{CidrIp: 0.0.0.0/0}]"),
        7,
        "port(s) 6379-6384",
    ),
    (
        "sg-ipv4-mapped-ipv6",
        rule(
            "IpProtocol: tcp, FromPort: 10001, ToPort: 10001, "
            "Ipv6Ranges: [{CidrIpv6: '::ffff:0:0/96'}]"
        ),
        7,
        "port(s) 10001 to public",
    ),
    (
        "sg-host-bits-set",
        rule("IpProtocol: tcp, FromPort: 6379, ToPort: 6379, IpRanges: [{CidrIp: 10.1.2.3/0}]"),
        7,
        "to public addresses (0.0.0.0/0)",
    ),
    (
        "sg-one-private-one-public",
        rule(
            "IpProtocol: tcp, FromPort: 6379, ToPort: 6379, "
            "IpRanges: [{CidrIp: 10.0.0.0/8}, {CidrIp: 8.8.8.0/24}]"
        ),
        7,
        "to public addresses (8.8.8.0/24)",
    ),
    (
        "sg-port-as-text",
        rule("IpProtocol: tcp, FromPort: '6379', ToPort: 6379, IpRanges: [{CidrIp: 10.0.0.0/8}]"),
        7,
        "FromPort must be a port number (got '6379')",
    ),
    (
        "sg-port-out-of-range",
        rule("IpProtocol: tcp, FromPort: 1, ToPort: 70000, IpRanges: [{CidrIp: 10.0.0.0/8}]"),
        7,
        "ToPort must be a port number (got 70000)",
    ),
    (
        "sg-bad-cidr",
        rule("IpProtocol: tcp, FromPort: 22, ToPort: 22, IpRanges: [{CidrIp: everywhere}]"),
        7,
        "IpRanges: not a CIDR block",
    ),
    (
        "sg-cidr-missing",
        rule("IpProtocol: tcp, FromPort: 22, ToPort: 22, IpRanges: [{Description: x}]"),
        7,
        "each entry of IpRanges needs CidrIp",
    ),
    (
        "sg-ranges-not-a-list",
        rule("IpProtocol: tcp, FromPort: 22, ToPort: 22, Ipv6Ranges: '::/0'"),
        7,
        "Ipv6Ranges must be a list",
    ),
    # Names that become paths, tags and environment on nodes.
    (
        "cluster-name-substitution",
        LOCAL + "cluster_name: $(touch x)\n",
        3,
        "cluster_name: use only letters, digits",
    ),
    ("cluster-name-semicolon", LOCAL + "cluster_name: a;b\n", 3, "cluster_name: use only letters"),
    ("cluster-name-dot-dot", LOCAL + "cluster_name: ../x\n", 3, "cluster_name: use only letters"),
    (
        "unknown-rayctl-node-type",
        LOCAL + TYPES + "rayctl:\n  node_types:\n    hh: {cost: 1}\n",
        9,
        "rayctl.node_types.hh: 'hh' is not in available_node_types; did you mean 'h'?",
    ),
    (
        "wheelhouse-missing",
        LOCAL + "rayctl:\n  runtime: {wheelhouse: no/such/dir}\n",
        4,
        "rayctl.runtime.wheelhouse: 'no/such/dir' is not a directory",
    ),
    (
        "ray-extra-misspelt",
        SSH + "rayctl:\n  runtime:\n    ray_extras: [default, sevre]\n",
        5,
        "rayctl.runtime.ray_extras[1]: 'sevre' is not an extra of ray 2.60.0; did you mean "
        "'serve'?",
    ),
    (
        "ray-extras-without-default",
        SSH + "rayctl:\n  runtime:\n    ray_extras: [data]\n",
        5,
        "rayctl.runtime.ray_extras: keep 'default': it is Ray's dashboard, which runs rayctl's "
        "jobs",
    ),
    (
        "package-not-a-requirement",
        SSH + "rayctl:\n  runtime:\n    packages: ['lightgbm=4']\n",
        5,
        "rayctl.runtime.packages[0]: 'lightgbm=4' is not a pip requirement",
    ),
    (
        "package-ray",
        SSH + "rayctl:\n  runtime:\n    packages: [numpy, 'Ray>=2']\n",
        5,
        "rayctl.runtime.packages[1]: 'Ray>=2': the nodes get rayctl's own ray version; choose "
        "Ray's libraries with rayctl.runtime.ray_extras",
    ),
    (
        "local-package-missing-here",
        LOCAL + "rayctl:\n  runtime:\n    packages: [rayctl-no-such-package-here]\n",
        5,
        "rayctl.runtime.packages[0]: local nodes run this Python",
    ),
    (
        "local-ray-extra-missing-here",
        LOCAL + "rayctl:\n  runtime:\n    ray_extras: [default, rllib]\n",
        5,
        "lacks ray[default,rllib]==2.60.0: install it here (pip install "
        "'ray[default,rllib]==2.60.0')",
    ),
    (
        "empty-region",
        "provider:\n  type: aws\n  region: ''\n  use_internal_ips: true\n",
        3,
        "provider.region: string should have at least 1 character",
    ),
    (
        "security-group-ids-text",
        AWS + "available_node_types:\n  h:\n    node_config: {InstanceType: m5.large, "
        "SecurityGroupIds: sg-1}\nhead_node_type: h\n",
        7,
        "node_config.SecurityGroupIds: must be a non-empty list of ids",
    ),
    ("top-level-list", "- provider\n", 1, "the top level must be a mapping"),
    (
        "max-workers-as-text",
        LOCAL + "max_workers: '3'\n",
        3,
        "max_workers: input should be a valid integer",
    ),
    (
        "max-workers-bool",
        LOCAL + "max_workers: true\n",
        3,
        "max_workers: input should be a valid integer",
    ),
    (
        "no-node-types",
        LOCAL + "available_node_types: {}\nhead_node_type: h\n",
        3,
        "available_node_types: define at least one node type",
    ),
]


@pytest.mark.parametrize(
    ("case_id", "text", "line", "fragment"), CONFIGS, ids=[c[0] for c in CONFIGS]
)
def test_bad_config_is_refused_with_its_location(
    case_id: str, text: str, line: int, fragment: str, tmp_path: Path, rayctl_home: Path, cli
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    result = cli("validate", path)
    assert result.code == 2, result.text
    first = result.err.splitlines()[0]
    assert first.startswith(f"{path}:{line}:") and fragment in first, result.err
    assert "Traceback" not in result.text and "internal error" not in result.text
    assert not rayctl_home.exists() or not any(rayctl_home.iterdir())


# (id, demand file text, line, fragment), planned against cluster-configs/local.yaml.
DEMANDS = [
    (
        "duplicate-node-id",
        "nodes:\n  - {id: a, type: ray.worker.cpu}\n  - {id: a, type: ray.worker.cpu}\n",
        3,
        "nodes[1].id: 'a' is also the id of nodes[0]",
    ),
    (
        "two-heads",
        "nodes:\n  - {id: a, type: ray.head.default, kind: head}\n"
        "  - {id: b, type: ray.head.default, kind: head}\n",
        3,
        "nodes[1].kind: a second head; nodes[0] is the head",
    ),
    (
        "available-over-given-total",
        "nodes:\n  - {id: a, type: ray.worker.cpu, total: {CPU: 2}, available: {CPU: 3}}\n",
        2,
        "nodes[0].available.CPU: 3 available but the node has 2 in total",
    ),
    (
        "available-over-type-resources",
        "nodes:\n  - {id: a, type: ray.worker.cpu, available: {CPU: 1.5}}\n",
        2,
        "nodes[0].available.CPU: 1.5 available but the node has 1 in total",
    ),
    (
        "available-resource-it-lacks",
        "nodes:\n  - {id: a, type: ray.worker.cpu, available: {GPU: 1}}\n",
        2,
        "nodes[0].available.GPU: 1 available but the node has 0 in total",
    ),
    (
        "unknown-node-type",
        "nodes:\n  - {id: a, type: ray.worker.gpu}\n",
        2,
        "nodes[0].type: 'ray.worker.gpu' is not in the config's node types; "
        "did you mean 'ray.worker.cpu'?",
    ),
    (
        "bundle-inf",
        "demands:\n  - {bundle: {CPU: .inf}}\n",
        2,
        "demands[0].bundle.CPU: input should be a finite number",
    ),
    (
        "bundle-nan",
        "demands:\n  - {bundle: {CPU: .nan}, count: 2}\n",
        2,
        "demands[0].bundle.CPU: input should be a finite number",
    ),
    (
        "count-inf",
        "demands:\n  - {bundle: {CPU: 1}, count: .inf}\n",
        2,
        "demands[0].count: input should be a valid integer",
    ),
    (
        "idle-inf",
        "nodes:\n  - {id: a, type: ray.worker.cpu, idle_s: .inf}\n",
        2,
        "nodes[0].idle_s: input should be a finite number",
    ),
    (
        "constraint-minus-inf",
        "constraints:\n  - {bundle: {CPU: -.inf}}\n",
        2,
        "constraints[0].bundle.CPU: input should be",
    ),
    (
        "placement-bundle-nan",
        "placement_groups:\n  - {strategy: PACK, bundles: [{CPU: .nan}]}\n",
        2,
        "placement_groups[0].bundles[0].CPU: input should be a finite",
    ),
    (
        "total-inf",
        "nodes:\n  - {id: a, type: ray.worker.cpu, total: {CPU: .inf}}\n",
        2,
        "nodes[0].total.CPU: input should be a finite number",
    ),
    (
        "demand-recursive-alias",
        "demands: &d [*d]\n",
        1,
        "an alias refers to a value that contains it",
    ),
]


@pytest.mark.parametrize(
    ("case_id", "text", "line", "fragment"), DEMANDS, ids=[c[0] for c in DEMANDS]
)
def test_bad_demand_file_is_refused_with_its_location(
    case_id: str, text: str, line: int, fragment: str, tmp_path: Path, rayctl_home: Path, cli
) -> None:
    path = tmp_path / "demand.yaml"
    path.write_text(text, encoding="utf-8")
    result = cli("plan", LOCAL_CONFIG, "--demand", path)
    assert result.code == 2, result.text
    assert result.err.startswith(f"{path}:{line}:") and fragment in result.err, result.err
    assert "Traceback" not in result.text and "internal error" not in result.text


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)  # nothing ever writes: opening it for reading the usual way blocks
    return path


def _big(tmp_path: Path) -> Path:
    path = tmp_path / "big.yaml"
    path.write_text(LOCAL + "metadata:\n" + "  k: v\n" * 200_000)
    return path


def _latin1(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(LOCAL.encode() + b"cluster_name: caf\xe9\n")
    return path


# (id, makes the path, fragment) for both the config and the demand file: run as the
# installed command with a timeout, so a hang fails the test instead of stopping the run.
NOT_DOCUMENTS = [
    ("fifo", _fifo, "not a regular file"),
    ("directory", lambda tmp: tmp, "not a regular file"),
    ("dev-zero", lambda tmp: Path("/dev/zero"), "not a regular file"),
    ("over-one-mib", _big, "larger than 1024 KiB"),
    ("not-utf8", _latin1, "not UTF-8 text"),
]


@pytest.mark.parametrize(
    ("case_id", "make", "fragment"), NOT_DOCUMENTS, ids=[c[0] for c in NOT_DOCUMENTS]
)
@pytest.mark.parametrize("role", ["config", "demand"])
def test_what_is_not_a_document_is_refused_at_once(
    case_id: str, make, fragment: str, role: str, tmp_path: Path
) -> None:
    path = make(tmp_path)
    args = ["validate", path] if role == "config" else ["plan", LOCAL_CONFIG, "--demand", path]
    result = subprocess.run(
        [RAYCTL, *map(str, args)], capture_output=True, text=True, timeout=30, env=_env(tmp_path)
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"{path}: {fragment}" + result.stderr.split(fragment, 1)[1]
    assert "Traceback" not in result.stderr


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAYCTL_DEBUG"}
    env["RAYCTL_HOME"] = str(tmp_path / "home")
    return env


# Job ids reach a shell command and Ray's HTTP paths on the head: only rayctl's form and
# Ray's own (raysubmit_ and 16 letters or digits).
BAD_JOB_IDS = [
    '"; echo INJECTED >&2; : "',
    "../..",
    "job-20250101-120000-ab12/../../x",
    "$(touch /tmp/x)",
    "job-20250101-120000-AB12",
    "job-20250101-120000-ab12\n",
    "job-2025-1-1",
    "",
    "[bold]job[/]",
    "raysubmit_short",
    "raysubmit_4LamXRuQpYdSMg7J/../x",
]


@pytest.mark.parametrize("command", ["logs", "stop"])
@pytest.mark.parametrize("job_id", BAD_JOB_IDS)
def test_bad_job_id_is_refused_before_anything_runs(
    command: str, job_id: str, rayctl_home: Path, cli
) -> None:
    # No cluster of this name exists: a valid id would get exit 4 ("no head node").
    result = cli(command, LOCAL_CONFIG, job_id, "-n", "nowhere")
    assert result.code == 2, result.text
    assert (
        result.err
        == f"error: JOB: {job_id!r} is not a job id" + result.err.split(" is not a job id", 1)[1]
    )
    assert not rayctl_home.exists() or not any(rayctl_home.iterdir())


@pytest.mark.parametrize("job_id", ["job-20250101-120000-ab12", "raysubmit_4LamXRuQpYdSMg7J"])
def test_a_well_formed_job_id_gets_past_the_check(job_id: str, rayctl_home: Path, cli) -> None:
    result = cli("logs", LOCAL_CONFIG, job_id, "-n", "nowhere")
    assert result.code == 4 and "has no head node" in result.err


# Command-line mistakes, through the installed command (typer's own click raises them).
USAGE = [
    (["upp", str(LOCAL_CONFIG)], "No such command 'upp'"),
    (["up", "--nope", str(LOCAL_CONFIG)], "No such option: --nope"),
    (["up"], "Missing argument"),
    (
        ["submit", str(LOCAL_CONFIG), "missing.py"],
        "Invalid value for SCRIPT: missing.py: no such file",
    ),
    (
        ["submit", str(LOCAL_CONFIG), "--working-dir", "nowhere", __file__],
        "Invalid value for --working-dir: nowhere: not a directory",
    ),
    (["plan", str(LOCAL_CONFIG)], "Missing option '--demand'"),
    (["logs", str(LOCAL_CONFIG)], "Missing argument"),
]


@pytest.mark.parametrize(("args", "message"), USAGE, ids=[" ".join(a[:2]) for a, _ in USAGE])
def test_usage_mistakes_exit_2_with_the_usage(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [RAYCTL, *args], capture_output=True, text=True, timeout=60, env=_env(tmp_path)
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Usage: rayctl") and message in result.stderr, result.stderr
    assert "internal error" not in result.stderr
    assert not (tmp_path / "home").exists()


def test_user_text_with_rich_markup_prints_as_written(tmp_path: Path, cli) -> None:
    """`[bold]` or `[/x]` in a name must neither style the output nor crash rich."""
    path = tmp_path / "cluster.yaml"
    path.write_text(
        LOCAL + "available_node_types:\n  '[bold]h':\n    resources: {CPU: 1}\n"
        "  '[/x]w': {resources: {CPU: 1}, max_workers: 1}\nhead_node_type: '[bold]h'\n"
    )
    result = cli("validate", path)
    assert result.code == 0, result.text
    assert "head [bold]h, workers [/x]w (0..1)" in result.out
    bad = cli("validate", tmp_path / "[/x].yaml")
    assert bad.code == 2 and bad.err == f"{tmp_path}/[/x].yaml: no such file\n"
