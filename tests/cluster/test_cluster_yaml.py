"""cluster.yaml: Ray's own offline validation, planted mistakes, and the security defaults.

`prepare_config` + `validate_config` (ray.autoscaler._private.util) merge the AWS defaults
and check the config against ray-schema.json without touching AWS: the provider bootstrap
(`ray up`'s VPC, security group, IAM and AMI lookups) is a separate step that these tests
deliberately do not run, and a socket guard proves nothing reaches the network.
"""

from __future__ import annotations

import copy
import pathlib
import re
import socket
from typing import Any

import pytest
import yaml

from ray.autoscaler._private.aws.config import _create_default_inbound_rules
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
WORLD = {"0.0.0.0/0", "::/0"}


def load() -> dict[str, Any]:
    with open(CLUSTER_YAML) as f:
        return yaml.safe_load(f)


def check(config: dict[str, Any]) -> dict[str, Any]:
    """Ray's validation plus the one rule it lacks: per-type min_workers <= max_workers."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    for name, node_type in prepared["available_node_types"].items():
        if node_type["min_workers"] > node_type["max_workers"]:
            raise ValueError(f"node type {name}: min_workers > max_workers")
    return prepared


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_cluster_yaml_passes_ray_validation_offline(no_network):
    prepared = check(load())
    assert prepared["provider"]["type"] == "aws"
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head is CPU only"
    gpu_types = {n: t for n, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert len(gpu_types) >= 2
    spot = [n for n, t in gpu_types.items()
            if t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot"]
    on_demand = [n for n, t in gpu_types.items() if "InstanceMarketOptions" not in t["node_config"]]
    assert spot and on_demand, "a spot GPU type and an on-demand fallback"
    assert all(types[n]["min_workers"] == 0 for n in gpu_types), "GPU workers scale from zero"
    assert types[spot[0]]["priority"] > types[on_demand[0]]["priority"]
    assert prepared["max_workers"] >= 2 and prepared["idle_timeout_minutes"] > 0


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.update(idle_timout_minutes=5), "idle_timout_minutes"),
    (lambda c: c["available_node_types"]["gpu.spot"].update(max_worker=2), "max_worker"),
    (lambda c: c.update(head_node_type="head.gpu"), "head_node_type"),
    (lambda c: c["available_node_types"]["gpu.spot"].update(min_workers=5), "max_workers"),
    (lambda c: c["available_node_types"]["gpu.ondemand"].update(min_workers=3), "min_workers > max"),
    (lambda c: c["available_node_types"]["gpu.spot"].update(resources={"GPU": 0.5}), "integer"),
], ids=["misspelled-key", "misspelled-node-key", "unknown-head-type", "min-sum-over-max",
        "type-min-over-max", "fractional-resource"])
def test_planted_mistakes_are_caught(mutate, message, no_network):
    config = load()
    mutate(config)
    with pytest.raises(Exception, match=re.escape(message)):
        check(config)


def test_security_group_opens_only_ssh_to_the_world():
    config = load()
    for name, node_type in config["available_node_types"].items():
        # A node type with its own groups would bypass the rules checked below.
        assert "SecurityGroupIds" not in node_type["node_config"], name
        assert "NetworkInterfaces" not in node_type["node_config"], name
    extra = config["provider"]["security_group"]["IpPermissions"]
    # The exact rule list `ray up` authorises on the group it creates (Ray's own function).
    rules = _create_default_inbound_rules({"sg-cluster"}, extra)
    world_open = []
    for rule in rules:
        cidrs = {r["CidrIp"] for r in rule.get("IpRanges", [])}
        cidrs |= {r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])}
        if cidrs & WORLD:
            world_open.append((rule["IpProtocol"], rule["FromPort"], rule["ToPort"]))
    assert world_open == [("tcp", 22, 22)]
    # Everything else is intra-cluster (group to itself).
    others = [r for r in rules if not ({x.get("CidrIp") for x in r.get("IpRanges", [])} & WORLD)]
    assert all(r.get("UserIdGroupPairs") and not r.get("IpRanges") for r in others)


def _ray_start_commands(config: dict[str, Any]) -> list[str]:
    cmds = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    return [c for c in cmds if "ray start" in c]


def test_every_ray_start_binds_dashboard_to_loopback_with_token_auth():
    config = load()
    starts = _ray_start_commands(config)
    assert len(starts) == 2
    for cmd in starts:
        hosts = re.findall(r"--dashboard-host[= ](\S+)", cmd)
        assert hosts == ["127.0.0.1"], cmd
        assert "RAY_AUTH_MODE=token" in cmd, cmd
        assert "0.0.0.0" not in cmd
    head = [c for c in starts if "--head" in c]
    assert len(head) == 1 and "--autoscaling-config" in head[0]
    # Workers get the head's token.
    assert "~/.ray/auth_token" in config["cluster_synced_files"]
    assert any("get-auth-token --generate" in c for c in config["head_setup_commands"])


def test_repository_shipped_and_installed_with_pinned_dependencies():
    config = load()
    assert "." in config["file_mounts"].values()
    remote = next(r for r, local in config["file_mounts"].items() if local == ".")
    setup = " ".join(config["setup_commands"])
    assert f"-e {remote}" in setup and "--python 3.11" in setup
    assert any("[cloud]" in c for c in config["head_setup_commands"]), "boto3 on the head"
    assert ".venv" in config["rsync_exclude"]
    assert config["metadata"]["storage_path"] == "s3://YOUR-BUCKET/audiogan"
    # A '#' inside a plain YAML scalar silently truncates a command: none may end mid-way.
    for cmd in config["setup_commands"] + config["head_setup_commands"]:
        assert cmd.count("'") % 2 == 0 and cmd.count('"') % 2 == 0, cmd


def test_every_key_is_commented():
    lines = CLUSTER_YAML.read_text().splitlines()
    key = re.compile(r"^\s*(-\s+)?[\w.\"~/-]+:(\s|$)")
    previous = ""
    missing = []
    for number, line in enumerate(lines, 1):
        if key.match(line) and not previous.lstrip().startswith("#") and " #" not in line:
            missing.append(f"{number}: {line.strip()}")
        if line.strip():
            previous = line
    assert not missing, "keys without a comment:\n" + "\n".join(missing)


def test_yaml_is_only_ever_safe_loaded():
    offenders = []
    for path in list((ROOT / "audiogan").rglob("*.py")) + list((ROOT / "tests").rglob("*.py")):
        text = path.read_text()
        if re.search(r"yaml\.(load|load_all|unsafe_load|full_load)\(|Loader=yaml\.(Loader|UnsafeLoader|FullLoader)", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], offenders
