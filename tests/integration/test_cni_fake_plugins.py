"""The CNI executor against script plugins that record what they were given: environment,
stdin per chain position, prevResult chaining, runtimeConfig, DEL order, retries, the result
cache, error objects, and version gating of CHECK/STATUS/GC."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import FailedPrecondition, Unavailable, Unimplemented
from runtime.model.network import PortMapping, PortProtocol
from runtime.network.cni import Attachment, CniExecutor, CniPluginError, pod_args
from runtime.network.conf import NetworkConfig, parse_conflist

pytestmark = pytest.mark.integration

# A plugin that appends {command, env, stdin} to conf["log"], fails when conf["fail"] names the
# command (conf["failTimes"] times, counted in a file), and on ADD adds conf["ip"] to prevResult.
PLUGIN = r"""#!{python}
import json, os, sys
conf = json.load(sys.stdin)
cmd = os.environ["CNI_COMMAND"]
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
if "log" in conf:
    with open(conf["log"], "a") as f:
        f.write(json.dumps({{"plugin": os.path.basename(sys.argv[0]), "cmd": cmd, "env": env,
                             "conf": conf}}) + "\n")
fail = conf.get("fail", {{}}).get(cmd)
if fail:
    counter = conf["log"] + "." + cmd + ".count"
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    open(counter, "w").write(str(n + 1))
    if n < conf.get("failTimes", 1000):
        print(json.dumps({{"cniVersion": conf["cniVersion"], **fail}}))
        sys.exit(1)
if cmd == "ADD":
    result = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "interfaces": [],
                                         "ips": []}}
    if "ip" in conf:
        result["interfaces"].append({{"name": os.environ["CNI_IFNAME"], "mac": "02:00:00:00:00:01",
                                      "sandbox": os.environ["CNI_NETNS"]}})
        result["ips"].append({{"address": conf["ip"], "gateway": "10.9.0.1",
                               "interface": len(result["interfaces"]) - 1}})
    print(json.dumps(result))
elif cmd == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}}))
"""


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("first", "second", "third"):
        p = d / name
        p.write_text(PLUGIN.format(python=sys.executable))
        p.chmod(0o755)
    return d


def _net(
    tmp_path: Path, version: str, plugins: list[dict[str, Any]], **extra: Any
) -> NetworkConfig:
    log = str(tmp_path / "calls.jsonl")
    body = {
        "cniVersion": version,
        "name": "testnet",
        **extra,
        "plugins": [{"log": log, **p} for p in plugins],
    }
    return parse_conflist(json.dumps(body).encode())


def _calls(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _attachment(netns: Path) -> Attachment:
    return Attachment(
        container_id="sb1",
        netns=str(netns),
        args=pod_args(pod_namespace="ns", pod_name="pod", infra_container_id="sb1", pod_uid="u"),
        port_mappings=(PortMapping(PortProtocol.TCP, 80, 8080),),
    )


@pytest.fixture
def netns(tmp_path: Path) -> Path:
    p = tmp_path / "netns"
    p.touch()  # the executor only passes the path on; these plugins never enter it
    return p


async def test_add_chains_prev_results_and_passes_the_spec_environment(
    tmp_path: Path, bin_dir: Path, netns: Path
) -> None:
    net = _net(
        tmp_path,
        "1.0.0",
        [
            {"type": "first", "ip": "10.9.0.5/24"},
            {"type": "second", "capabilities": {"portMappings": True}},
        ],
    )
    cni = CniExecutor(bin_dirs=[tmp_path / "empty", bin_dir], cache_dir=tmp_path / "cache")
    result = await cni.add(net, _attachment(netns))
    assert [ip.address for ip in result.ips] == ["10.9.0.5/24"]
    assert result.interfaces[0].sandbox == str(netns)

    first, second = _calls(tmp_path)
    assert first["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "sb1",
        "CNI_NETNS": str(netns),
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;"
        "K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=u",
        "CNI_PATH": f"{tmp_path / 'empty'}:{bin_dir}",
    }
    assert first["conf"]["name"] == "testnet" and first["conf"]["cniVersion"] == "1.0.0"
    assert "prevResult" not in first["conf"] and "runtimeConfig" not in first["conf"]
    assert second["conf"]["prevResult"]["ips"][0]["address"] == "10.9.0.5/24"
    assert second["conf"]["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    }
    cache = tmp_path / "cache" / "results" / "testnet-sb1-eth0"
    assert json.loads(cache.read_text())["result"]["ips"][0]["address"] == "10.9.0.5/24"


async def test_del_after_restart_uses_cache_runs_in_reverse_and_without_netns(
    tmp_path: Path, bin_dir: Path, netns: Path
) -> None:
    net = _net(
        tmp_path,
        "1.0.0",
        [
            {"type": "first", "ip": "10.9.0.5/24"},
            {"type": "second", "capabilities": {"portMappings": True}},
        ],
    )
    await CniExecutor(bin_dirs=[bin_dir], cache_dir=tmp_path / "cache").add(net, _attachment(netns))
    await asyncio.to_thread(netns.unlink)  # the namespace is gone
    fresh = CniExecutor(bin_dirs=[bin_dir], cache_dir=tmp_path / "cache")  # "after a restart"
    bare = Attachment(container_id="sb1", netns=str(netns))  # the caller forgot the ports
    await fresh.delete(None, bare)
    dels = [c for c in _calls(tmp_path) if c["cmd"] == "DEL"]
    assert [c["plugin"] for c in dels] == ["second", "first"]
    assert all(c["env"]["CNI_NETNS"] == "" for c in dels)
    assert all(c["conf"]["prevResult"]["ips"][0]["address"] == "10.9.0.5/24" for c in dels)
    assert dels[0]["conf"]["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080
    assert not (tmp_path / "cache" / "results" / "testnet-sb1-eth0").exists()
    await fresh.delete(None, bare)  # idempotent: nothing cached, no config: nothing to run
    assert len([c for c in _calls(tmp_path) if c["cmd"] == "DEL"]) == 2


async def test_del_retries_each_plugin_and_keeps_going(
    tmp_path: Path, bin_dir: Path, netns: Path
) -> None:
    net = _net(
        tmp_path,
        "0.4.0",
        [
            {"type": "first", "ip": "10.9.0.5/24"},
            {"type": "second", "fail": {"DEL": {"code": 5, "msg": "busy"}}, "failTimes": 2},
        ],
    )
    cni = CniExecutor(bin_dirs=[bin_dir], cache_dir=tmp_path / "cache")
    await cni.add(net, _attachment(netns))
    await cni.delete(net, _attachment(netns))
    dels = [c["plugin"] for c in _calls(tmp_path) if c["cmd"] == "DEL"]
    assert dels == ["second", "second", "second", "first"]

    always = _net(
        tmp_path,
        "0.4.0",
        [
            {"type": "first"},
            {"type": "third", "fail": {"DEL": {"code": 7, "msg": "bad"}}},
        ],
    )
    with pytest.raises(CniPluginError, match="CNI plugin third DEL failed: bad"):
        await cni.delete(always, _attachment(netns))
    dels = [c["plugin"] for c in _calls(tmp_path) if c["cmd"] == "DEL"][4:]
    assert dels == ["third", "third", "third", "first"]  # the rest still ran


async def test_failed_add_raises_the_plugin_message_and_rolls_back(
    tmp_path: Path, bin_dir: Path, netns: Path
) -> None:
    net = _net(
        tmp_path,
        "1.0.0",
        [
            {"type": "first", "ip": "10.9.0.5/24"},
            {"type": "second", "fail": {"ADD": {"code": 7, "msg": "no bridge", "details": "cni0"}}},
        ],
    )
    cni = CniExecutor(bin_dirs=[bin_dir], cache_dir=tmp_path / "cache")
    with pytest.raises(FailedPrecondition) as info:
        await cni.add(net, _attachment(netns))
    assert str(info.value) == "CNI plugin second ADD failed: no bridge: cni0 (code 7)"
    assert [(c["plugin"], c["cmd"]) for c in _calls(tmp_path)] == [
        ("first", "ADD"),
        ("second", "ADD"),
        ("second", "DEL"),
        ("first", "DEL"),
    ]
    assert not any((tmp_path / "cache" / "results").glob("*"))

    retry = _net(tmp_path, "1.0.0", [{"type": "first", "fail": {"ADD": {"code": 11, "msg": "x"}}}])
    with pytest.raises(Unavailable, match="code 11"):
        await cni.add(retry, _attachment(netns))
    missing = _net(tmp_path, "1.0.0", [{"type": "nonexistent"}])
    with pytest.raises(FailedPrecondition, match="nonexistent not found"):
        await cni.add(missing, _attachment(netns))


async def test_check_status_gc_are_version_gated(
    tmp_path: Path, bin_dir: Path, netns: Path
) -> None:
    cni = CniExecutor(bin_dirs=[bin_dir], cache_dir=tmp_path / "cache")
    old = _net(tmp_path, "0.3.1", [{"type": "first", "ip": "10.9.0.5/24"}])
    with pytest.raises(Unimplemented):
        await cni.check(old, _attachment(netns))
    v100 = _net(tmp_path, "1.0.0", [{"type": "first", "ip": "10.9.0.5/24"}])
    await cni.add(v100, _attachment(netns))
    await cni.check(v100, _attachment(netns))
    await cni.status(v100)
    await cni.gc(v100, [("sb1", "eth0")])
    assert [c["cmd"] for c in _calls(tmp_path)] == ["ADD", "CHECK"]
    assert _calls(tmp_path)[1]["conf"]["prevResult"]["ips"][0]["address"] == "10.9.0.5/24"

    v110 = _net(tmp_path, "1.1.0", [{"type": "first", "ip": "10.9.0.5/24"}])
    await cni.status(v110)
    await cni.gc(v110, [("other", "eth0")])  # sb1 is stale: DEL, then plugin GC
    calls = _calls(tmp_path)[2:]
    assert [c["cmd"] for c in calls] == ["STATUS", "DEL", "GC"]
    assert calls[0]["env"] == {"CNI_COMMAND": "STATUS", "CNI_PATH": str(bin_dir)}
    assert calls[2]["conf"]["cni.dev/valid-attachments"] == [
        {"containerID": "other", "ifname": "eth0"}
    ]
    assert await cni.versions("first") == ("0.4.0", "1.0.0", "1.1.0")
