"""Network value types that pods, events and CNI share: port mappings, DNS, bandwidth, and what
a CNI plugin reports (interfaces, addresses).

They live here, below the pod layer, the event exchange and the network manager, so that each
of those depends downward on them rather than sideways on each other. Frozen, slotted, and
validated when built (bad input raises :class:`runtime.errors.InvalidArgument`).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from runtime.errors import InvalidArgument


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidArgument(message)


def _nonempty(value: object, what: str) -> None:
    _require(isinstance(value, str) and value != "", f"{what} must be a non-empty string")


class PortProtocol(enum.Enum):
    """A port mapping's transport protocol (CRI ``Protocol``)."""

    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


@dataclass(frozen=True, slots=True)
class PortMapping:
    """One host port forwarded to a pod port. ``host_ip`` empty means every host address."""

    protocol: PortProtocol
    container_port: int
    host_port: int
    host_ip: str = ""

    def __post_init__(self) -> None:
        _require(
            isinstance(self.protocol, PortProtocol), "port mapping protocol must be a PortProtocol"
        )
        _require(1 <= self.container_port <= 65535, f"invalid container port {self.container_port}")
        _require(0 <= self.host_port <= 65535, f"invalid host port {self.host_port}")
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise InvalidArgument(f"invalid host IP {self.host_ip!r}") from None


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """DNS settings for a pod (CRI ``DNSConfig``); also the DNS part of a CNI result."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    domain: str = ""

    def __post_init__(self) -> None:
        for name in ("servers", "searches", "options"):
            value = getattr(self, name)
            _require(
                isinstance(value, tuple) and all(isinstance(v, str) for v in value),
                f"dns {name} must be a tuple of strings",
            )


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """Traffic shaping for a pod in bits per second (CNI ``bandwidth`` capability); 0 = unset."""

    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0

    def __post_init__(self) -> None:
        for name in ("ingress_rate", "ingress_burst", "egress_rate", "egress_burst"):
            _require(getattr(self, name) >= 0, f"bandwidth {name} must not be negative")


@dataclass(frozen=True, slots=True)
class NetworkInterface:
    """An interface a CNI plugin created; ``sandbox`` is the netns path, empty for the host."""

    name: str
    mac: str = ""
    sandbox: str = ""

    def __post_init__(self) -> None:
        _nonempty(self.name, "interface name")


@dataclass(frozen=True, slots=True)
class IPConfig:
    """An address a CNI plugin assigned: ``address`` in CIDR form (``10.1.2.3/24``);
    ``interface`` indexes the result's interfaces (None when the plugin did not say)."""

    address: str
    gateway: str = ""
    interface: int | None = None

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_interface(self.address)
        except ValueError:
            raise InvalidArgument(f"invalid IP address/prefix {self.address!r}") from None
        if self.gateway:
            try:
                ipaddress.ip_address(self.gateway)
            except ValueError:
                raise InvalidArgument(f"invalid gateway {self.gateway!r}") from None
        _require(
            self.interface is None or self.interface >= 0, "interface index must not be negative"
        )

    @property
    def ip(self) -> str:
        """The address without its prefix length."""
        return str(ipaddress.ip_interface(self.address).ip)

    @property
    def version(self) -> int:
        """4 or 6."""
        return ipaddress.ip_interface(self.address).version
