"""ExecSync A/B: this checkout's pinnaced against another checkout's, in alternating rounds,
with the CPU each exec costs the daemon and everything it runs for it.

    .venv/bin/python -m benchmarks.bench_exec --baseline DIR [--rounds 6] [--calls 50]
        [--cmd echo,hi] [--hold]

``DIR`` is a source tree of pinnace (for example ``git archive main | tar -x -C DIR``); its
``cri`` and ``runtime`` packages are what the second daemon runs (the harness, the client and
this script are this checkout's). Without ``--baseline`` only this checkout is measured.

Each daemon runs one host-network pod with one busybox container (as ``bench_cri`` does); a
round runs ``--calls`` ExecSync calls on each daemon, the daemons in alternating order. Figures
per daemon: p50 and p90 wall time of a call over all rounds, and CPU milliseconds per call of
the daemon plus its reaped children (``utime + stime + cutime + cstime`` of pinnaced from
/proc: runc exec, and what runc reaps, are children whose time lands in ``cutime``). CPU per
call is the figure a busy machine skews least; the wall figures need the machine quiet.

``--hold`` starts the daemons and the pod, prints their pids and the container id, and waits
for Enter: for strace, perf or py-spy on a daemon while something else sends ExecSync.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.workload import pct, remove_pod, run_pod  # noqa: E402
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """Seconds of CPU ``pid`` itself and its reaped descendants have used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / _TICK, (cutime + cstime) / _TICK


@dataclass
class Side:
    """One daemon under test and what was measured on it."""

    name: str
    daemon: Pinnaced
    container: str = ""
    pod: str = ""
    wall: list[float] = field(default_factory=list)
    # CPU seconds per call, one per round: the daemon itself, its children
    own: list[float] = field(default_factory=list)
    children: list[float] = field(default_factory=list)

    def round(self, cmd: list[str], calls: int) -> None:
        rt = self.daemon.runtime
        request = pb.ExecSyncRequest(container_id=self.container, cmd=cmd, timeout=10)
        assert self.daemon.pid is not None
        own0, kids0 = cpu_split(self.daemon.pid)
        for _ in range(calls):
            t0 = time.perf_counter()
            reply = rt.ExecSync(request, timeout=30)
            self.wall.append(time.perf_counter() - t0)
            if reply.exit_code != 0:
                raise RuntimeError(f"{self.name}: exit {reply.exit_code}: {reply.stderr!r}")
        own1, kids1 = cpu_split(self.daemon.pid)
        self.own.append((own1 - own0) / calls)
        self.children.append((kids1 - kids0) / calls)

    def cpu(self) -> float:
        """Median over rounds of the CPU seconds per call, daemon and children."""
        return statistics.median(a + b for a, b in zip(self.own, self.children, strict=True))


def _print(sides: list[Side], args: argparse.Namespace) -> None:
    print(f"ExecSync {' '.join(args.cmd)!r}: {args.rounds} rounds x {args.calls} calls per side")
    head = ("p50 ms", "p90 ms", "CPU ms/call", "daemon", "children")
    print(f"{'':<10}" + "".join(f"{h:>12}" for h in head))
    for s in sides:
        p50 = statistics.median(s.wall) * 1000
        p90 = pct(s.wall, 0.9) * 1000
        own = statistics.median(s.own) * 1000
        kids = statistics.median(s.children) * 1000
        row = (p50, p90, s.cpu() * 1000, own, kids)
        print(f"{s.name:<10}" + "".join(f"{v:>12.2f}" for v in row))
    if len(sides) == 2:
        a, b = sides
        print(
            f"ratio {a.name}/{b.name}: p50 "
            f"{statistics.median(a.wall) / statistics.median(b.wall):.3f}, CPU "
            f"{a.cpu() / b.cpu():.3f}"
        )
    print("(CPU per call: medians over rounds; children = runc or the exec helper and the command)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a pinnace source tree to compare with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--cmd", type=lambda s: s.split(","), default=["echo", "hi"])
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    if args.baseline and not (args.baseline / "cri" / "daemon.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a pinnace source tree (no cri/daemon.py)")

    with tempfile.TemporaryDirectory(prefix="pinnace-bench-exec-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry, contextlib.ExitStack() as stack:
            push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
            image = f"{registry.host}/bench/busybox:v1"
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            trees = [("this", REPO)] + ([("baseline", args.baseline)] if args.baseline else [])
            sides = []
            for name, tree in trees:
                (base / name).mkdir()
                daemon = Pinnaced(
                    base / name,
                    registry_hosts_dir=hosts,
                    extra_args=["--log-level", "info"],
                    source_root=tree.resolve(),
                )
                stack.enter_context(daemon)
                daemon.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                side = Side(name, daemon)
                side.pod, side.container = run_pod(daemon.runtime, image, "host")
                stack.callback(remove_pod, daemon.runtime, side.pod, side.container)
                side.round(args.cmd, 3)  # warm
                side.wall.clear()
                side.own.clear()
                side.children.clear()
                sides.append(side)
            if args.hold:
                for s in sides:
                    print(f"{s.name}: pinnaced pid {s.daemon.pid}, socket {s.daemon.socket}, "
                          f"container {s.container}")  # fmt: skip
                input("Enter to stop: ")
                return 0
            for n in range(args.rounds):
                for side in sides[::-1] if n % 2 else sides:
                    side.round(args.cmd, args.calls)
            _print(sides, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
