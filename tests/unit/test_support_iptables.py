"""The shared hostPort chains are removed only when no pod on the host maps a port."""

from tests.support.iptables import in_use

_SHARED = [
    "-P PREROUTING ACCEPT",
    "-N CNI-HOSTPORT-DNAT",
    "-N CNI-HOSTPORT-MASQ",
    "-N CNI-HOSTPORT-SETMARK",
    "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
]


def test_shared_chains_alone_are_not_in_use() -> None:
    assert not in_use(_SHARED)


def test_a_pods_mapping_below_them_is_use() -> None:
    rules = [
        *_SHARED,
        "-N CNI-DN-1c9e1c0a6b0d4e7f5a2b3",
        "-A CNI-HOSTPORT-DNAT -p tcp -j CNI-DN-1c9e1c0a6b0d4e7f5a2b3",
    ]
    assert in_use(rules)
