"""Cost as work grows: what a node with N running pods pays for the kubelet's polling, for
idling, for memory and for a daemon restart; and how creation scales with concurrent clients.

    .venv/bin/python -m benchmarks.bench_scale [--steps 10,50,100,200] [--restart-at 100]
                                               [--reference containerd]
                                               [--clients 1,8,32] [--storm-pods 64]
    .venv/bin/python -m benchmarks.bench_scale --only restart [--pods 100] [--rounds 5]
                                               [--against DIR] [--signal term|kill]

For each step (host-network pods, one busybox container each, grown from the previous step):
- ListPodSandbox and ListContainers p50/p99 over 300 calls;
- a kubelet-style relist: ListPodSandbox + ListContainers, then PodSandboxStatus for every pod
  and ContainerStatus for every container (what PLEG and the status manager do each second),
  wall time p50/p99 over 10 relists;
- pinnaced CPU while idle (utime + stime over 10 s, % of one core), its RSS, and the memory added
  per pod (daemon growth plus each pod's conmon, RSS);
- at ``--restart-at`` pods: SIGTERM, start again, time until READY=1 and until a List shows every
  pod and container (as with ``--only restart`` below).
With ``--reference containerd`` the step table has a row for Debian's containerd too, started
in a temporary root by ``benchmarks/reference.py`` (per-pod memory: its growth plus each pod's
shim), both runtimes holding the step's pods while either is measured; the client, a
synchronous grpc-python stub, is the same for both, so the two rows say how much of a figure is
the client's and the machine's (the restart and the storm stay pinnace's; ``bench_storm`` has
the storm side by side).
Then a storm: ``--storm-pods`` pod lifecycles by 1, 8 and 32 concurrent clients while a sampler
calls ListPodSandbox every 20 ms: pods/s, errors, ListPodSandbox p99 during the storm.

``--only restart`` measures the restart alone: ``--pods`` pods are started once, then the daemon
is stopped (SIGTERM, or SIGKILL as after a crash) and started again ``--rounds`` times. Each
round reports the time from exec to systemd's ``READY=1`` (the daemon sends it once it serves),
to the first ListPodSandbox + ListContainers that show every pod READY and every container
RUNNING (on a fresh connection, so no client reconnect backoff is counted), and pinnaced's CPU
seconds at ``READY=1`` (its own, and its waited-for children's). ``--profile OUT`` adds one
start of this tree's daemon under cProfile (the stats file is written when it stops).
With ``--against DIR`` (a checkout of another revision, e.g. ``git archive main | tar -x -C
DIR``) rounds alternate between that tree's daemon and this one on the same pods and state, and
medians are printed for both. The daemons cache their bytecode (in the run's temporary
directory), as a pip-installed pinnaced does; ``--no-bytecode-cache`` keeps a
``PYTHONDONTWRITEBYTECODE`` from the environment, so every start compiles every module.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from benchmarks import reference  # noqa: E402
from benchmarks.workload import (  # noqa: E402
    conmon_pids,
    cpu_seconds,
    lifecycle,
    pct,
    pids_whose_args,
    push_bench_images,
    remove_pod,
    rss_pss_kb,
    run_pod,
    timed,
)
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import REPO_ROOT, Pinnaced, cri_clients, hosts_toml  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


def relist(rt: Any) -> None:
    pods = rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter())).items
    ctrs = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter())).containers
    for p in pods:
        rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=p.id))
    for c in ctrs:
        rt.ContainerStatus(pb.ContainerStatusRequest(container_id=c.id))


@dataclass
class Runtime:
    """One runtime the step table measures: its CRI stubs, its daemon's PID, the PIDs of its
    per-pod helpers (conmon; containerd's shims), and the daemon's RSS before any pod (MB)."""

    name: str
    runtime: Any
    image: Any
    pid: int
    helpers: Callable[[], list[int]]
    baseline_rss: float = 0.0


def measure_step(target: Runtime, n: int, idle_s: float) -> None:
    rt = target.runtime
    lp = timed(lambda: rt.ListPodSandbox(pb.ListPodSandboxRequest(filter={})), 300)
    lc = timed(lambda: rt.ListContainers(pb.ListContainersRequest(filter={})), 300)
    rl = timed(lambda: relist(rt), 10)
    before = cpu_seconds(target.pid)
    # Idle means idle: nothing to await, the daemon is watched for a fixed span.
    time.sleep(idle_s)
    idle = (cpu_seconds(target.pid) - before) / idle_s * 100
    rss = rss_pss_kb(target.pid)[0] / 1024
    helpers = sum(rss_pss_kb(c)[0] for c in target.helpers()) / 1024
    per_pod = (max(0.0, rss - target.baseline_rss) + helpers) / n
    print(
        f"| {target.name} | {n:4d} | {statistics.median(lp) * 1e3:.2f} / "
        f"{pct(lp, 0.99) * 1e3:.2f} "
        f"| {statistics.median(lc) * 1e3:.2f} / {pct(lc, 0.99) * 1e3:.2f} "
        f"| {statistics.median(rl) * 1e3:.1f} / {pct(rl, 0.99) * 1e3:.1f} "
        f"| {idle:.2f} | {rss:.1f} | {per_pod:.2f} |",
        flush=True,
    )


def _cpu_self_children(pid: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) of ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def timed_restart(
    daemon: Pinnaced, notify: socket.socket, pods: int, sig: int
) -> tuple[float, float, float, float]:
    """Stop the daemon with ``sig``, start it again: (seconds to READY=1, seconds to a correct
    List, CPU seconds of pinnaced at READY=1, of its children then)."""
    daemon.stop(sig)
    notify.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:  # a STOPPING=1 (or anything older) is not this start's readiness
            notify.recv(4096)
    notify.settimeout(120)
    starter = threading.Thread(target=daemon.start)
    start = time.perf_counter()
    starter.start()
    while True:
        message = notify.recv(4096).decode()
        if "READY=1" in message.split("\n"):
            break
    ready = time.perf_counter() - start
    pid = daemon._proc.pid if daemon._proc else 0
    cpu, children = _cpu_self_children(pid)
    channel = grpc.insecure_channel(f"unix://{daemon.socket}")
    rt, _ = cri_clients(daemon.socket, channel=channel)
    listed = rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items
    ctrs = rt.ListContainers(pb.ListContainersRequest(), timeout=30).containers
    answered = time.perf_counter() - start
    channel.close()
    starter.join()
    ready_pods = sum(p.state == pb.SANDBOX_READY for p in listed)
    running = sum(c.state == pb.CONTAINER_RUNNING for c in ctrs)
    if (ready_pods, running) != (pods, pods):
        raise RuntimeError(
            f"after restart {ready_pods}/{len(listed)} pods READY and {running}/{len(ctrs)} "
            f"containers RUNNING; {pods} of each are running"
        )
    return ready, answered, cpu, children


def _startup_steps(daemon: Pinnaced) -> str:
    """The start-up steps the daemon logged with its last "ready on" line (where it has one)."""
    lines = [line for line in daemon.log_tail(400).splitlines() if " ready on unix://" in line]
    return lines[-1].split(" after ", 1)[1] if lines and " after " in lines[-1] else "-"


def _notify_and_env(base: Path, *, bytecode_cache: bool) -> tuple[socket.socket, dict[str, str]]:
    """A notify socket under ``base`` for the daemon's READY=1, and the daemon's environment."""
    notify_path = base / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(120)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
    if bytecode_cache:
        # as installed by pip (bytecode compiled once), not as a checkout that forbids it;
        # outside the trees, so nothing is written into them
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    return notify, env


def restart_only(args: argparse.Namespace) -> int:
    sig = signal.SIGKILL if args.signal == "kill" else signal.SIGTERM
    trees = [("this tree", REPO_ROOT)]
    if args.against is not None:
        trees.insert(0, (f"{args.against}", args.against.resolve()))
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-restart-") as tmp:
        base = Path(tmp)
        notify, env = _notify_and_env(base, bytecode_cache=not args.no_bytecode_cache)
        with notify, Registry.plain(parent_dir=base) as registry:
            push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
            image = f"{registry.host}/bench/busybox:v1"
            hosts_toml(base / "certs.d", registry.host, plain_http=True)
            (base / "d").mkdir()
            # one daemon (one root, state and socket); rounds switch the tree it runs from
            daemon = Pinnaced(
                base / "d",
                registry_hosts_dir=base / "certs.d",
                extra_args=["--log-level", "info"],
                env=env,
            )
            figures: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n, _ in trees}
            try:
                daemon.start()
                daemon.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                pods = [run_pod(daemon.runtime, image, "host") for _ in range(args.pods)]
                for _, root in trees:  # unmeasured: each tree's bytecode is cached
                    daemon.source_root = root
                    timed_restart(daemon, notify, args.pods, sig)
                print(
                    f"{args.pods} pods running; restarts by SIG{args.signal.upper()}; bytecode "
                    + ("compiled at every start" if args.no_bytecode_cache else "cached"),
                    flush=True,
                )
                print(
                    "| round | daemon | to READY=1 ms | to correct List ms | CPU s (children) "
                    "| the daemon's own account of its start |"
                )
                print("| --- | --- | --- | --- | --- | --- |")
                for round_ in range(args.rounds):
                    for name, root in trees:
                        daemon.source_root = root
                        got = timed_restart(daemon, notify, args.pods, sig)
                        figures[name].append(got)
                        print(
                            f"| {round_ + 1} | {name} | {got[0] * 1e3:.0f} | {got[1] * 1e3:.0f} "
                            f"| {got[2]:.2f} ({got[3]:.2f}) | {_startup_steps(daemon)} |",
                            flush=True,
                        )
                if args.profile is not None:
                    # one more start of this tree's daemon, under cProfile (written at its exit)
                    daemon.source_root = REPO_ROOT
                    plain = daemon.argv
                    daemon.argv = lambda: [  # type: ignore[method-assign]
                        sys.executable, "-m", "cProfile", "-o", str(args.profile.resolve()),
                        *plain()[1:],
                    ]  # fmt: skip
                    got = timed_restart(daemon, notify, args.pods, sig)
                    daemon.stop()
                    daemon.argv = plain  # type: ignore[method-assign]
                    daemon.start()
                    print(f"profiled start: READY=1 after {got[0] * 1e3:.0f} ms, {args.profile}")
                for name, rows in figures.items():
                    print(
                        f"median {name}: READY=1 "
                        f"{statistics.median(r[0] for r in rows) * 1e3:.0f} ms, correct List "
                        f"{statistics.median(r[1] for r in rows) * 1e3:.0f} ms, CPU "
                        f"{statistics.median(r[2] for r in rows):.2f} s "
                        f"(children {statistics.median(r[3] for r in rows):.2f} s)"
                    )
                for pod, ctr in pods:
                    remove_pod(daemon.runtime, pod, ctr)
            finally:
                daemon.close()
    return 0


def storm(daemon: Pinnaced, image: str, clients: int, total: int) -> None:
    each = max(1, total // clients)
    errors: list[BaseException] = []
    samples: list[float] = []
    done = threading.Event()

    def client() -> None:
        channel = grpc.insecure_channel(f"unix://{daemon.socket}")
        rt, _ = cri_clients(daemon.socket, channel=channel)
        try:
            for _ in range(each):
                lifecycle(rt, image, "host")
        except BaseException as exc:  # counted below
            errors.append(exc)
        finally:
            channel.close()

    def sampler() -> None:
        channel = grpc.insecure_channel(f"unix://{daemon.socket}")
        rt, _ = cri_clients(daemon.socket, channel=channel)
        while not done.wait(0.02):
            start = time.perf_counter()
            rt.ListPodSandbox(pb.ListPodSandboxRequest(filter={}))
            samples.append(time.perf_counter() - start)
        channel.close()

    watcher = threading.Thread(target=sampler)
    watcher.start()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    print(
        f"| {clients:3d} | {clients * each} | {clients * each / wall:.1f} | {len(errors)} "
        f"| {statistics.median(samples) * 1e3:.2f} / {pct(samples, 0.99) * 1e3:.2f} |",
        flush=True,
    )
    if errors:
        print(f"  first error: {errors[0]}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--restart-at", type=int, default=100)
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--storm-pods", type=int, default=64)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=["restart"], help="measure only this step")
    parser.add_argument(
        "--reference",
        choices=["containerd", "none"],
        default="none",
        help="the step table for this runtime too (benchmarks/reference.py), beside pinnace",
    )
    parser.add_argument("--pods", type=int, default=100, help="with --only restart")
    parser.add_argument("--rounds", type=int, default=5, help="with --only restart")
    parser.add_argument(
        "--against", type=Path, help="with --only restart: another checkout's daemon, alternated"
    )
    parser.add_argument("--signal", choices=["term", "kill"], default="term")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE from the environment (every daemon start compiles)",
    )
    parser.add_argument(
        "--profile", type=Path, help="with --only restart: one more start under cProfile, to here"
    )
    args = parser.parse_args()
    if args.only == "restart":
        return restart_only(args)
    steps = args.steps or [10, 50, 100, 200]
    clients = args.clients or [1, 8, 32]

    with tempfile.TemporaryDirectory(prefix="pinnace-bench-scale-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry, contextlib.ExitStack() as stack:
            image, pause = push_bench_images(registry)
            hosts_toml(base / "certs.d", registry.host, plain_http=True)
            (base / "d").mkdir()
            notify, env = _notify_and_env(base, bytecode_cache=not args.no_bytecode_cache)
            stack.enter_context(notify)
            daemon = Pinnaced(
                base / "d",
                registry_hosts_dir=base / "certs.d",
                extra_args=["--log-level", "info"],
                env=env,
            )
            stack.enter_context(daemon)
            targets = [
                Runtime(
                    "pinnace",
                    daemon.runtime,
                    daemon.image,
                    daemon.pid or 0,
                    lambda: conmon_pids(daemon.state),
                )
            ]
            if args.reference == "containerd":
                reference.ensure_installed()
                (base / "containerd").mkdir()
                ctd = reference.Containerd(
                    base / "containerd", sandbox_image=pause, hosts_dir=base / "certs.d"
                )
                stack.enter_context(ctd)
                sock = str(ctd.socket)
                targets.append(
                    Runtime(
                        f"containerd {reference.version()}",
                        *ctd.clients(),
                        ctd.pid or 0,
                        lambda: pids_whose_args(
                            lambda a: bool(a) and "containerd-shim" in a[0] and sock in a
                        ),
                    )
                )
            for target in targets:
                for ref in (image, pause):
                    target.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)))
                target.baseline_rss = rss_pss_kb(target.pid)[0] / 1024
            pods: dict[str, list[tuple[str, str]]] = {t.name: [] for t in targets}
            print(
                "| runtime | pods | ListPodSandbox p50/p99 ms | ListContainers p50/p99 ms "
                "| relist p50/p99 ms | idle CPU % | RSS MB | MB per pod |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            restart: tuple[float, float, float, float] | None = None
            for n in steps:
                # every runtime holds n pods while any is measured: the same machine for each
                for target in targets:
                    while len(pods[target.name]) < n:
                        pods[target.name].append(run_pod(target.runtime, image, "host"))
                for target in targets:
                    measure_step(target, n, args.idle_seconds)
                if n == args.restart_at:
                    restart = timed_restart(daemon, notify, n, signal.SIGTERM)
                    targets[0].runtime, targets[0].pid = daemon.runtime, daemon.pid or 0
            if restart is not None:
                print(
                    f"restart to ready with {args.restart_at} pods: READY=1 after "
                    f"{restart[0] * 1e3:.0f} ms, every pod and container listed after "
                    f"{restart[1] * 1e3:.0f} ms, pinnaced CPU {restart[2]:.2f} s; "
                    f"its account: {_startup_steps(daemon)}"
                )
            for target in targets:
                for pod, ctr in pods[target.name]:
                    remove_pod(target.runtime, pod, ctr)
            print("| clients | pods | pods/s | errors | ListPodSandbox during p50/p99 ms |")
            print("| --- | --- | --- | --- | --- |")
            for n in clients:
                storm(daemon, image, n, args.storm_pods)
    return 0


if __name__ == "__main__":
    sys.exit(main())
