"""The files a sandbox gives its containers: /etc/hostname, /etc/hosts, /etc/resolv.conf.
Content builders are pure; ``write_sandbox_files`` writes them atomically."""

from __future__ import annotations

import os
from pathlib import Path

from runtime.errors import InvalidArgument
from runtime.model.network import DnsConfig

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
_MAX_SEARCHES = 32


def hosts_content(hostname: str) -> str:
    """/etc/hosts of a pod: loopback entries (as kubelet writes them for non-host-network
    pods; kubelet then manages the file itself when it bind-mounts its own)."""
    lines = [
        "# pinnace: the pod's hosts file",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    if hostname:
        lines.append(f"127.0.1.1\t{hostname}")
    return "\n".join(lines) + "\n"


def resolv_conf_content(dns: DnsConfig) -> str:
    """/etc/resolv.conf from the CRI's DNSConfig."""
    if len(dns.searches) > _MAX_SEARCHES:
        raise InvalidArgument(
            f"dns_config has {len(dns.searches)} search domains; at most {_MAX_SEARCHES}"
        )
    for value in (*dns.servers, *dns.searches, *dns.options):
        if any(c in value for c in "\n\r\0 "):
            raise InvalidArgument(f"dns_config entry {value!r} contains whitespace")
    lines = [f"nameserver {server}" for server in dns.servers]
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


def _write(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_sandbox_files(
    directory: Path, *, hostname: str, dns: DnsConfig | None, host_network: bool
) -> tuple[Path, Path, Path]:
    """Write hostname, hosts and resolv.conf into ``directory``; returns their paths. A pod on
    the host's network shares the host's /etc/hosts and, without DNS config, its resolv.conf."""
    hostname_path = directory / "hostname"
    hosts_path = directory / "hosts"
    resolv_path = directory / "resolv.conf"
    _write(hostname_path, (hostname or os.uname().nodename) + "\n")
    if host_network and Path("/etc/hosts").is_file():
        _write(hosts_path, Path("/etc/hosts").read_text())
    else:
        _write(hosts_path, hosts_content(hostname))
    if dns is not None and (dns.servers or dns.searches or dns.options):
        _write(resolv_path, resolv_conf_content(dns))
    elif HOST_RESOLV_CONF.is_file():
        _write(resolv_path, HOST_RESOLV_CONF.read_text())
    else:
        _write(resolv_path, "")
    return hostname_path, hosts_path, resolv_path
