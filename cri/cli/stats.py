"""``pinnace stats`` and ``pinnace top``: CPU, memory and disk of pods and their containers.

One table, a pod's row followed by its containers' rows, from ListPodSandboxStats and
ListContainerStats (what kubelet's summary API reads). ``CPU %`` is of one core: the daemon's
``usage_nano_cores`` when it has one, else the rate between this sample and the previous one
(``--watch`` keeps the previous sample). ``top`` is ``stats --watch``: the screen is redrawn
every ``--interval`` seconds, like ``crictl stats --watch``, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass
from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli.client import Client
from cri.cli.pods import message_to_dict
from cri.cli.render import (
    add_output_option,
    dump,
    human_size,
    positive_seconds,
    short_id,
    structured,
    table,
)

_CLEAR = "\x1b[H\x1b[2J"


@dataclass(frozen=True, slots=True)
class Sample:
    """A cumulative CPU figure at a time, to turn two samples into a rate."""

    timestamp_ns: int
    core_ns: int


def cpu_percent(cpu: Any, previous: Sample | None) -> float | None:
    """Percent of one core: ``usage_nano_cores`` if set, else the rate since ``previous``."""
    if cpu.HasField("usage_nano_cores"):
        return float(cpu.usage_nano_cores.value) / 1e7
    if previous is None or not cpu.HasField("usage_core_nano_seconds"):
        return None
    elapsed = cpu.timestamp - previous.timestamp_ns
    if elapsed <= 0:
        return None
    return 100.0 * (cpu.usage_core_nano_seconds.value - previous.core_ns) / elapsed


def _sample(cpu: Any) -> Sample | None:
    if not cpu.HasField("usage_core_nano_seconds"):
        return None
    return Sample(cpu.timestamp, cpu.usage_core_nano_seconds.value)


def _cells(cpu: Any, memory: Any, disk: int | None, previous: Sample | None) -> list[str]:
    percent = cpu_percent(cpu, previous)
    working_set = memory.working_set_bytes.value if memory.HasField("working_set_bytes") else None
    return [
        f"{percent:.2f}" if percent is not None else "-",
        human_size(working_set) if working_set is not None else "-",
        human_size(disk) if disk is not None else "-",
    ]


class StatsView:
    """Rows for one refresh; keeps the previous CPU samples between refreshes."""

    def __init__(self) -> None:
        self._previous: dict[str, Sample] = {}

    def rows(
        self,
        pods: list[pb.PodSandboxStats],
        containers: list[pb.ContainerStats],
        *,
        pod_of: dict[str, str],
        wide: bool,
    ) -> list[list[str]]:
        """``pod_of`` maps container ids to their pod's id."""
        ident = (lambda i: i) if wide else short_id
        by_pod: dict[str, list[pb.ContainerStats]] = {}
        for ctr in containers:
            by_pod.setdefault(pod_of.get(ctr.attributes.id, ""), []).append(ctr)
        seen: dict[str, Sample] = {}
        out: list[list[str]] = []

        def container_row(ctr: pb.ContainerStats, pod_name: str) -> list[str]:
            cid = ctr.attributes.id
            disk = (
                ctr.writable_layer.used_bytes.value
                if ctr.writable_layer.HasField("used_bytes")
                else None
            )
            cells = _cells(ctr.cpu, ctr.memory, disk, self._previous.get(cid))
            if (sample := _sample(ctr.cpu)) is not None:
                seen[cid] = sample
            return ["container", ident(cid), ctr.attributes.metadata.name, pod_name, *cells]

        placed: set[str] = set()
        for pod in sorted(pods, key=lambda p: p.attributes.metadata.name):
            meta = pod.attributes.metadata
            mine = by_pod.get(pod.attributes.id, [])
            disk = sum(
                c.writable_layer.used_bytes.value
                for c in mine
                if c.writable_layer.HasField("used_bytes")
            )
            cells = _cells(
                pod.linux.cpu, pod.linux.memory, disk, self._previous.get(pod.attributes.id)
            )
            if (sample := _sample(pod.linux.cpu)) is not None:
                seen[pod.attributes.id] = sample
            out.append(["pod", ident(pod.attributes.id), meta.name, meta.namespace, *cells])
            for ctr in sorted(mine, key=lambda c: c.attributes.metadata.name):
                placed.add(ctr.attributes.id)
                out.append(container_row(ctr, meta.name))
        for ctr in containers:
            if ctr.attributes.id not in placed:
                out.append(container_row(ctr, ""))
        self._previous = seen
        return out


HEADERS = ["KIND", "ID", "NAME", "POD/NAMESPACE", "CPU %", "MEM", "DISK"]


def cmd_stats(c: Client, args: argparse.Namespace) -> int:
    view = StatsView()
    tick = threading.Event()  # never set: its wait is the refresh period, not a wait for a fact
    while True:
        pods, containers = c.pod_stats(), c.container_stats()
        if structured(args.output):
            data = {
                "pods": [message_to_dict(p) for p in pods],
                "containers": [message_to_dict(x) for x in containers],
            }
            print(dump(data, args.output))
        else:
            pod_of = {x.id: x.pod_sandbox_id for x in c.list_containers()}
            rows = view.rows(pods, containers, pod_of=pod_of, wide=args.output == "wide")
            text = table(HEADERS, rows)
            if args.watch and sys.stdout.isatty():
                sys.stdout.write(_CLEAR)
            print(text)
        sys.stdout.flush()
        if not args.watch:
            return 0
        if not sys.stdout.isatty():
            print()
        tick.wait(args.interval)


def add_parsers(sub: Any) -> None:
    """Add ``stats`` and ``top`` (``stats --watch``)."""
    for name, watch in (("stats", False), ("top", True)):
        p = sub.add_parser(
            name,
            help="CPU, memory and disk of pods and containers"
            + (" (refreshing until Ctrl-C)" if watch else ""),
        )
        add_output_option(p)
        p.add_argument(
            "--watch", "-w", action="store_true", default=watch, help="refresh until Ctrl-C"
        )
        p.add_argument(
            "--interval", type=positive_seconds, default=1.0, help="seconds between refreshes"
        )
        p.set_defaults(func=cmd_stats)
