"""CNI results: what an ADD returns, parsed for every result format the spec has had.

Formats:

0.3.0 - 1.x
    ``{"interfaces": [{"name", "mac", "sandbox"}], "ips": [{"address": "10.1.2.3/24",
    "gateway", "interface": <index>}], "routes": [{"dst", "gw"}], "dns": {"nameservers",
    "domain", "search", "options"}}`` (0.3.x also has ``"version": "4"`` on each IP).
0.1.0 / 0.2.0
    ``{"ip4": {"ip", "gateway", "routes"}, "ip6": {...}, "dns": {...}}``: converted, with no
    interfaces and IPs that name no interface.

The raw JSON is kept (``raw``): it is the ``prevResult`` the next plugin in a chain and DEL and
CHECK receive, and what the result cache stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runtime.errors import FailedPrecondition, InvalidArgument
from runtime.model.network import DnsConfig, IPConfig, NetworkInterface
from runtime.network.conf import parse_version


@dataclass(frozen=True, slots=True)
class Route:
    """A route a plugin installed in the pod: destination CIDR and (optional) gateway."""

    dst: str
    gw: str = ""


@dataclass(frozen=True, slots=True)
class CniResult:
    """A parsed ADD result."""

    cni_version: str
    interfaces: tuple[NetworkInterface, ...]
    ips: tuple[IPConfig, ...]
    routes: tuple[Route, ...]
    dns: DnsConfig | None
    raw: str

    def as_dict(self) -> dict[str, Any]:
        """A fresh copy of the raw result object."""
        value = json.loads(self.raw)
        assert isinstance(value, dict)
        return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{where} must be a list of strings")
    return tuple(value)


def _dns(value: Any) -> DnsConfig | None:
    if not value:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument("dns must be an object")
    domain = value.get("domain") or ""
    if not isinstance(domain, str):
        raise InvalidArgument("dns.domain must be a string")
    return DnsConfig(
        servers=_strings(value.get("nameservers"), "dns.nameservers"),
        searches=_strings(value.get("search"), "dns.search"),
        options=_strings(value.get("options"), "dns.options"),
        domain=domain,
    )


def _routes(value: Any) -> list[Route]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument("routes must be a list")
    routes = []
    for r in value:
        if not isinstance(r, dict) or not isinstance(r.get("dst"), str):
            raise InvalidArgument("a route needs a 'dst'")
        routes.append(Route(dst=r["dst"], gw=r.get("gw") or ""))
    return routes


def _current(data: dict[str, Any], version: str) -> CniResult:
    interfaces = []
    for i, iface in enumerate(data.get("interfaces") or []):
        if not isinstance(iface, dict):
            raise InvalidArgument(f"interfaces[{i}] must be an object")
        interfaces.append(
            NetworkInterface(
                name=iface.get("name", ""),
                mac=iface.get("mac") or "",
                sandbox=iface.get("sandbox") or "",
            )
        )
    ips = []
    for i, ip in enumerate(data.get("ips") or []):
        if not isinstance(ip, dict) or not isinstance(ip.get("address"), str):
            raise InvalidArgument(f"ips[{i}] needs an 'address'")
        index = ip.get("interface")
        if index is not None and (not isinstance(index, int) or index >= len(interfaces)):
            raise InvalidArgument(f"ips[{i}].interface {index!r} names no interface")
        ips.append(
            IPConfig(address=ip["address"], gateway=ip.get("gateway") or "", interface=index)
        )
    return CniResult(
        cni_version=version,
        interfaces=tuple(interfaces),
        ips=tuple(ips),
        routes=tuple(_routes(data.get("routes"))),
        dns=_dns(data.get("dns")),
        raw=json.dumps(data, sort_keys=True),
    )


def _legacy(data: dict[str, Any], version: str) -> CniResult:
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        block = data.get(key)
        if not block:
            continue
        if not isinstance(block, dict) or not isinstance(block.get("ip"), str):
            raise InvalidArgument(f"{key} needs an 'ip'")
        ips.append(IPConfig(address=block["ip"], gateway=block.get("gateway") or ""))
        routes.extend(_routes(block.get("routes")))
    return CniResult(
        cni_version=version,
        interfaces=(),
        ips=tuple(ips),
        routes=tuple(routes),
        dns=_dns(data.get("dns")),
        raw=json.dumps(data, sort_keys=True),
    )


def parse_result(data: Any, *, requested_version: str, plugin: str = "") -> CniResult:
    """Parse a plugin's ADD output. The result's own ``cniVersion`` decides its format (the
    requested one when it says none). A malformed result is the plugin's fault:
    FailedPrecondition naming the plugin."""
    who = f"CNI plugin {plugin}" if plugin else "CNI plugin"
    try:
        if not isinstance(data, dict):
            raise InvalidArgument("the result is not a JSON object")
        version = data.get("cniVersion") or requested_version
        if parse_version(version) < (0, 3, 0):
            return _legacy(data, version)
        return _current(data, version)
    except InvalidArgument as e:
        raise FailedPrecondition(f"{who} returned an invalid result: {e}") from None
