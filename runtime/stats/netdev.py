"""Network counters of a pod's network namespace, from ``/proc/<pid>/net/dev``.

Terms:

- **interface counters**: the kernel's cumulative per-interface figures as ``/proc/net/dev``
  lists them: received and transmitted bytes, packets, errors and drops.
- **default interface**: the one the kubelet shows as the pod's network (``eth0``, the name
  CNI plugins give the pod's end of its link); when a pod has no ``eth0``, the first
  interface that is not loopback.

``/proc/<pid>/net/dev`` shows the namespace of process ``pid`` without entering it, so a pod
with any process (its infra process or a container's) is read with one small file read. A pod
without a process in it has only its pinned namespace file; then one fresh thread joins that
namespace and reads ``/proc/thread-self/net/dev`` (``/proc/self`` would name the thread group
leader, still in the daemon's namespace). Loopback is left out, as cAdvisor does.

:func:`parse_net_dev` is pure; :func:`read_pod_interfaces` is the blocking reader.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.sandbox.namespaces import NamespaceKind, call_in_namespace

DEFAULT_INTERFACE = "eth0"


@dataclass(frozen=True, slots=True)
class InterfaceCounters:
    """Cumulative counters of one network interface."""

    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


def parse_net_dev(text: str) -> list[InterfaceCounters]:
    """The interfaces of a ``/proc/net/dev`` text. The two header lines and malformed lines
    are skipped. Each line is ``name: 8 receive fields 8 transmit fields`` (bytes, packets,
    errs, drop, fifo, frame/colls, compressed, multicast/carrier)."""
    out: list[InterfaceCounters] = []
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if len(fields) < 16:
            continue
        try:
            n = [int(f) for f in fields[:16]]
        except ValueError:
            continue
        out.append(
            InterfaceCounters(
                name=name.strip(),
                rx_bytes=n[0],
                rx_packets=n[1],
                rx_errors=n[2],
                rx_dropped=n[3],
                tx_bytes=n[8],
                tx_packets=n[9],
                tx_errors=n[10],
                tx_dropped=n[11],
            )
        )
    return out


def pod_interfaces(counters: Iterable[InterfaceCounters]) -> list[InterfaceCounters]:
    """The interfaces a pod reports: all but loopback, in the kernel's order."""
    return [c for c in counters if c.name != "lo"]


def default_interface(interfaces: Sequence[InterfaceCounters]) -> InterfaceCounters | None:
    """``eth0`` when present, else the first interface (see the module docstring)."""
    for c in interfaces:
        if c.name == DEFAULT_INTERFACE:
            return c
    return interfaces[0] if interfaces else None


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _read_thread_self() -> str:
    return Path("/proc/thread-self/net/dev").read_text()


def read_pod_interfaces(netns: Path, pids: Iterable[int]) -> list[InterfaceCounters] | None:
    """The non-loopback interfaces of the network namespace pinned at ``netns``; ``pids``
    are processes that may be in it (checked: a process is used only if its namespace is
    that one). None when the namespace is gone. Blocking."""
    wanted = _inode(str(netns))
    if wanted is None:
        return None
    for pid in pids:
        if pid <= 0 or _inode(f"/proc/{pid}/ns/net") != wanted:
            continue
        try:
            text = Path(f"/proc/{pid}/net/dev").read_text()
        except OSError:
            continue  # exited between the two reads
        return pod_interfaces(parse_net_dev(text))
    try:
        text = call_in_namespace(netns, NamespaceKind.NET, _read_thread_self)
    except OSError:
        return None
    return pod_interfaces(parse_net_dev(text))
