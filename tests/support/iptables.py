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


def in_use(rules: list[str]) -> bool:
    """Whether any pod on the host has a port mapping now: a per-pod ``CNI-DN-*`` chain that
    portmap hangs below the shared chains (pure; ``rules`` as ``iptables -S`` prints them)."""
    return any(line.startswith("-N CNI-DN-") for line in rules)


def remove_hostport_chains(keep: set[str]) -> None:
    """Delete the CNI-HOSTPORT-* chains not in ``keep``, and the jumps to them — unless some
    pod on the host still maps a port through them: another test run or benchmark running at
    the same time may have made them after ``keep`` was taken, and deleting them under it would
    break its pods' ports (the run that ends last removes them)."""
    rules = _nat_rules()
    doomed = hostport_chains() - keep
    if not doomed or in_use(rules):
        return
    for line in rules:
        parts = shlex.split(line)
        if parts[:1] == ["-A"] and "-j" in parts and parts[parts.index("-j") + 1] in doomed:
            if parts[1] not in doomed:
                subprocess.run(["iptables", "-t", "nat", "-D", *parts[1:]], capture_output=True)
    for chain in doomed:
        subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True)
    for chain in doomed:
        subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True)
