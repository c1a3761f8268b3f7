"""CNI with the real Debian plugins (/usr/lib/cni): bridge + host-local + portmap + loopback.

Each test network has its own bridge (``pnt<random>``) and subnet (10.213.<random>.0/24), no
masquerading, and keeps host-local's reservations in a temporary ``dataDir``. Traffic goes only
between the host and the test's own namespaces. Finalizers DEL, unpin and delete the bridge even
when a test fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from runtime.errors import FailedPrecondition
from runtime.events import Exchange
from runtime.events.types import (
    NetworkAttached,
    NetworkDetached,
    NetworkFailed,
    SandboxNetnsCreated,
    SandboxNetnsRemoving,
)
from runtime.model.network import PortMapping, PortProtocol
from runtime.network import Attachment, CniExecutor, NetworkManager
from runtime.network.conf import parse_conflist
from runtime.sandbox.namespaces import NamespaceKind, pin_namespaces, run_in_namespaces, unpin

pytestmark = pytest.mark.integration

CNI_BIN = Path("/usr/lib/cni")
FAILING_PLUGIN = """#!{python}
import json, sys
json.load(sys.stdin)
print(json.dumps({{"cniVersion": "1.0.0", "code": 7, "msg": "refusing on purpose",
                  "details": "test plugin"}}))
sys.exit(1)
"""


def _nat_rules() -> str:
    return subprocess.run(
        ["iptables", "-t", "nat", "-S"], check=True, capture_output=True, text=True
    ).stdout


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _delete_link(name: str) -> None:
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=name):
            ipr.link("del", index=index)


@dataclass
class TestNet:
    """One throwaway CNI network and the namespaces created on it."""

    __test__ = False
    tmp: Path
    name: str
    bridge: str
    subnet_prefix: str
    conf_dir: Path
    bin_dir: Path
    data_dir: Path
    cache_dir: Path
    netns_dirs: list[Path]

    def conflist(self, *, extra_plugins: tuple[dict, ...] = ()) -> bytes:
        return json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": self.name,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": self.bridge,
                        "isGateway": True,
                        "ipMasq": False,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": f"{self.subnet_prefix}.0/24"}]],
                            "dataDir": str(self.data_dir),
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
                    {"type": "loopback"},
                    *extra_plugins,
                ],
            }
        ).encode()

    async def netns(self) -> Path:
        directory = self.tmp / f"sb{len(self.netns_dirs)}"
        self.netns_dirs.append(directory)
        pinned = await pin_namespaces(directory, kinds=frozenset({NamespaceKind.NET}))
        return pinned.paths[NamespaceKind.NET]

    def executor(self) -> CniExecutor:
        return CniExecutor(bin_dirs=[self.bin_dir, CNI_BIN], cache_dir=self.cache_dir)


@pytest.fixture
async def testnet(tmp_path: Path) -> AsyncIterator[TestNet]:
    suffix = secrets.token_hex(3)
    net = TestNet(
        tmp=tmp_path,
        name=f"pinnace-test-{suffix}",
        bridge=f"pnt{suffix}",
        subnet_prefix=f"10.213.{secrets.randbelow(256)}",
        conf_dir=tmp_path / "net.d",
        bin_dir=tmp_path / "bin",
        data_dir=tmp_path / "ipam",
        cache_dir=tmp_path / "cache",
        netns_dirs=[],
    )
    net.conf_dir.mkdir()
    net.bin_dir.mkdir()
    failing = net.bin_dir / "failing"
    failing.write_text(FAILING_PLUGIN.format(python=sys.executable))
    failing.chmod(0o755)
    try:
        yield net
    finally:
        # DEL whatever is still cached (frees IPs, veths and portmap rules), then the rest.
        cni = net.executor()
        for i, _ in enumerate(net.netns_dirs):
            try:
                await cni.delete(None, Attachment(container_id=f"sb{i}", netns=""))
            except Exception as e:  # keep tearing down; report at the end
                print(f"teardown DEL sb{i}: {e}", file=sys.stderr)
        for directory in net.netns_dirs:
            await unpin(directory)
        await asyncio.to_thread(_delete_link, net.bridge)
        assert not _link_exists(net.bridge)


async def _serve_in(netns: Path) -> socket.socket:
    return await run_in_namespaces(
        {NamespaceKind.NET: netns}, lambda: socket.create_server(("0.0.0.0", 0))
    )


def _echo_once(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        conn.sendall(conn.recv(64))


def _roundtrip(ip: str, port: int) -> bytes:
    with socket.create_connection((ip, port), timeout=10) as c:
        c.sendall(b"ping")
        return c.recv(64)


async def _exchange_via(
    server: socket.socket, ip: str, client: Callable[[Callable[[], bytes]], object]
) -> bytes:
    port = server.getsockname()[1]
    serving = asyncio.create_task(asyncio.to_thread(_echo_once, server))
    try:
        reply = await client(lambda: _roundtrip(ip, port))  # type: ignore[misc]
    finally:
        await serving
    return reply  # type: ignore[return-value]


async def test_add_gives_reachable_pods_and_del_removes_everything(testnet: TestNet) -> None:
    net = parse_conflist(testnet.conflist())
    cni = testnet.executor()
    ns_a, ns_b = await testnet.netns(), await testnet.netns()
    att_a = Attachment(
        container_id="sb0",
        netns=str(ns_a),
        port_mappings=(PortMapping(PortProtocol.TCP, 80, 38080),),
    )
    att_b = Attachment(container_id="sb1", netns=str(ns_b))
    result_a = await cni.add(net, att_a)
    result_b = await cni.add(net, att_b)
    ip_a, ip_b = result_a.ips[0].ip, result_b.ips[0].ip
    assert ip_a.startswith(testnet.subnet_prefix + ".") and ip_a != ip_b
    assert result_a.ips[0].gateway == f"{testnet.subnet_prefix}.1"
    pod_if = result_a.interfaces[result_a.ips[0].interface]
    assert pod_if.name == "eth0" and pod_if.sandbox == str(ns_a)
    host_veths = [i.name for i in result_a.interfaces if not i.sandbox and i.name != testnet.bridge]
    assert len(host_veths) == 1 and _link_exists(host_veths[0])
    reservation = testnet.data_dir / testnet.name / ip_a
    assert reservation.read_text().startswith("sb0")
    assert "--dport 38080" in _nat_rules()  # portmap got the mapping through runtimeConfig

    # host → pod A
    server_a = await _serve_in(ns_a)
    with server_a:
        assert await _exchange_via(server_a, ip_a, asyncio.to_thread) == b"ping"
    # pod A → pod B over the bridge
    server_b = await _serve_in(ns_b)
    with server_b:
        in_a = lambda fn: run_in_namespaces({NamespaceKind.NET: ns_a}, fn)  # noqa: E731
        assert await _exchange_via(server_b, ip_b, in_a) == b"ping"

    # (portmap 1.1.1's CHECK wrongly looks for an IPv6 chain when a pod with port mappings has
    # only IPv4, so CHECK the pod without mappings.)
    await cni.check(net, att_b)
    await cni.delete(net, att_a)
    assert not _link_exists(host_veths[0])
    assert not reservation.exists()
    assert "--dport 38080" not in _nat_rules()
    assert not (testnet.cache_dir / "results" / f"{testnet.name}-sb0-eth0").exists()
    await cni.delete(net, att_a)  # idempotent
    await cni.delete(net, att_b)
    assert not (testnet.data_dir / testnet.name / ip_b).exists()


async def test_failing_plugin_raises_its_message_and_leaves_nothing(testnet: TestNet) -> None:
    net = parse_conflist(testnet.conflist(extra_plugins=({"type": "failing"},)))
    ns = await testnet.netns()
    with pytest.raises(
        FailedPrecondition, match="CNI plugin failing ADD failed: refusing on purpose"
    ):
        await testnet.executor().add(net, Attachment(container_id="sb0", netns=str(ns)))
    reserved = [p.name for p in (testnet.data_dir / testnet.name).iterdir() if p.name[0].isdigit()]
    assert reserved == []
    links = await run_in_namespaces(
        {NamespaceKind.NET: ns}, lambda: sorted(name for _, name in socket.if_nameindex())
    )
    assert links == ["lo"]
    assert not any((testnet.cache_dir / "results").glob("*"))


async def test_network_manager_attaches_and_detaches_through_events(testnet: TestNet) -> None:
    exchange = Exchange()
    manager = NetworkManager(
        exchange, conf_dir=testnet.conf_dir, bin_dirs=[CNI_BIN], cache_dir=testnet.cache_dir
    )
    status = manager.status()
    assert not status.ready and status.reason == "NetworkPluginNotReady"
    assert "no network config found" in status.message
    async with manager:  # subscribed from here on
        ns = await testnet.netns()
        created = SandboxNetnsCreated(
            sandbox_id="sb0",
            netns_path=str(ns),
            pod_name="web",
            pod_namespace="default",
            pod_uid="uid-0",
        )
        async with exchange.subscribe('event.sandbox_id=="sb0",topic~="^/network/"') as sub:
            exchange.publish("k8s.io", created)
            failed = (await sub.next(timeout=60)).event
            assert (
                isinstance(failed, NetworkFailed) and "cni config not initialized" in failed.message
            )

            (testnet.conf_dir / "10-test.conflist").write_bytes(testnet.conflist())
            assert manager.status().ready
            exchange.publish("k8s.io", created)
            attached = await sub.next(timeout=60)
            assert isinstance(attached.event, NetworkAttached) and attached.namespace == "k8s.io"
            ip = attached.event.ips[0].ip
            assert ip.startswith(testnet.subnet_prefix + ".")
            reservation = testnet.data_dir / testnet.name / ip
            assert reservation.exists()

            exchange.publish("k8s.io", SandboxNetnsRemoving(sandbox_id="sb0", netns_path=str(ns)))
            detached = await sub.next(timeout=60)
            assert isinstance(detached.event, NetworkDetached)
            assert not reservation.exists()
