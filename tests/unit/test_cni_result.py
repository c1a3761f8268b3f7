"""CNI results in every format, and the capability arguments plugins receive."""

from __future__ import annotations

import pytest

from runtime.errors import FailedPrecondition, InvalidArgument
from runtime.model.network import Bandwidth, DnsConfig, PortMapping, PortProtocol
from runtime.network.cni import Attachment, pod_args
from runtime.network.result import Route, parse_result

CURRENT = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
        {"name": "eth0", "mac": "bb:bb:bb:bb:bb:bb", "sandbox": "/run/ns/net"},
    ],
    "ips": [
        {"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 1},
        {"address": "fd00::5/64", "interface": 1},
    ],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
    "dns": {"nameservers": ["10.1.0.1"], "search": ["example"], "domain": "d"},
}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
def test_current_formats(version: str) -> None:
    data = {**CURRENT, "cniVersion": version}
    result = parse_result(data, requested_version=version)
    assert [i.name for i in result.interfaces] == ["cni0", "eth0"]
    assert result.interfaces[1].sandbox == "/run/ns/net"
    assert [(ip.ip, ip.version, ip.interface) for ip in result.ips] == [
        ("10.1.0.5", 4, 1),
        ("fd00::5", 6, 1),
    ]
    assert result.ips[0].gateway == "10.1.0.1"
    assert result.routes == (Route("0.0.0.0/0", "10.1.0.1"),)
    assert result.dns == DnsConfig(servers=("10.1.0.1",), searches=("example",), domain="d")
    assert result.as_dict() == data


def test_legacy_0_2_result_is_converted() -> None:
    data = {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.2.0.7/16", "gateway": "10.2.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "fd01::7/64"},
        "dns": {"nameservers": ["8.8.8.8"]},
    }
    result = parse_result(data, requested_version="0.2.0")
    assert result.interfaces == ()
    assert [(ip.address, ip.gateway, ip.interface) for ip in result.ips] == [
        ("10.2.0.7/16", "10.2.0.1", None),
        ("fd01::7/64", "", None),
    ]
    assert result.routes == (Route("0.0.0.0/0"),)


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"cniVersion": "1.0.0", "ips": [{"address": "nonsense"}]},
        {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": 3}]},
        {"cniVersion": "1.0.0", "routes": [{"gw": "1.1.1.1"}]},
        {"cniVersion": "0.2.0", "ip4": {"gateway": "1.1.1.1"}},
    ],
)
def test_invalid_results_blame_the_plugin(bad: object) -> None:
    with pytest.raises(FailedPrecondition, match="CNI plugin bridge returned an invalid"):
        parse_result(bad, requested_version="1.0.0", plugin="bridge")


def test_capability_args_and_cni_args() -> None:
    att = Attachment(
        container_id="sb1",
        netns="/run/ns",
        args=pod_args(
            pod_namespace="default", pod_name="web", infra_container_id="sb1", pod_uid="u1"
        ),
        port_mappings=(
            PortMapping(PortProtocol.TCP, 80, 8080, "127.0.0.1"),
            PortMapping(PortProtocol.UDP, 53, 0),  # no host port: not forwarded
            PortMapping(PortProtocol.SCTP, 9, 9),
        ),
        bandwidth=Bandwidth(ingress_rate=1000, ingress_burst=10),
        dns=DnsConfig(servers=("10.0.0.10",)),
    )
    assert att.cni_args() == (
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
        "K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=u1"
    )
    assert att.capability_args() == {
        "portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"},
            {"hostPort": 9, "containerPort": 9, "protocol": "sctp"},
        ],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 10, "egressRate": 0, "egressBurst": 0},
        "dns": {"servers": ["10.0.0.10"], "searches": [], "options": []},
    }
    assert Attachment(container_id="x", netns="").capability_args() == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"container_id": "../x", "netns": ""},
        {"container_id": "x", "netns": "", "ifname": "way-too-long-name0"},
        {"container_id": "x", "netns": "", "args": (("K", "a;b"),)},
    ],
)
def test_invalid_attachments(kwargs: dict) -> None:
    with pytest.raises(InvalidArgument):
        Attachment(**kwargs)
