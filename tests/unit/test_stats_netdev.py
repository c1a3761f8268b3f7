"""Parsing /proc/net/dev and choosing a pod's interfaces."""

from __future__ import annotations

from runtime.stats.netdev import default_interface, parse_net_dev, pod_interfaces

SAMPLE = "\n".join(
    [
        "Inter-|   Receive                                                |  Transmit",
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets"
        " errs drop fifo colls carrier compressed",
        "    lo:     560       8    0    0    0     0          0         0      560       8"
        "    0    0    0     0       0          0",
        "  eth0: 1234567    9876    3    4    0     0          0         7   765432    5432"
        "    1    2    0     0       0          0",
        " net1:      10       1    0    0    0     0          0         0       20       2"
        "    0    0    0     0       0          0",
        "bogus: not numbers at all",
        "",
    ]
)


def test_parses_every_interface_with_receive_and_transmit_columns() -> None:
    parsed = {c.name: c for c in parse_net_dev(SAMPLE)}
    assert sorted(parsed) == ["eth0", "lo", "net1"]
    eth0 = parsed["eth0"]
    assert (eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped) == (
        1234567,
        9876,
        3,
        4,
    )
    assert (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped) == (765432, 5432, 1, 2)


def test_headers_and_malformed_lines_are_skipped() -> None:
    assert parse_net_dev("Inter-|  Receive\n face |bytes\n") == []
    assert parse_net_dev("eth0: 1 2 3\n") == []


def test_pod_interfaces_leave_out_loopback_and_default_is_eth0() -> None:
    interfaces = pod_interfaces(parse_net_dev(SAMPLE))
    assert [c.name for c in interfaces] == ["eth0", "net1"]
    default = default_interface(interfaces)
    assert default is not None and default.name == "eth0"


def test_default_interface_without_eth0_is_the_first() -> None:
    interfaces = pod_interfaces(parse_net_dev(SAMPLE.replace("eth0", "ens3")))
    default = default_interface(interfaces)
    assert default is not None and default.name == "ens3"
    assert default_interface([]) is None
