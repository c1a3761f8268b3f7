"""The nat-table chains CNI's portmap plugin shares between pods (CNI-HOSTPORT-*). portmap
creates them on first use and never deletes them; tests that create them remove them again so
that a test run leaves the host's firewall as it found it."""

from __future__ import annotations

import shlex
import subprocess

_PREFIX = "CNI-HOSTPORT-"


def _nat_rules() -> list[str]:
    out = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    return out.stdout.splitlines()


def hostport_chains() -> set[str]:
    return {line.split()[1] for line in _nat_rules() if line.startswith(f"-N {_PREFIX}")}


def remove_hostport_chains(keep: set[str]) -> None:
    """Delete the CNI-HOSTPORT-* chains not in ``keep``, and the jumps to them."""
    doomed = hostport_chains() - keep
    if not doomed:
        return
    for line in _nat_rules():
        parts = shlex.split(line)
        if parts[:1] == ["-A"] and "-j" in parts and parts[parts.index("-j") + 1] in doomed:
            if parts[1] not in doomed:
                subprocess.run(["iptables", "-t", "nat", "-D", *parts[1:]], capture_output=True)
    for chain in doomed:
        subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True)
    for chain in doomed:
        subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True)
