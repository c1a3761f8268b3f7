"""What isolation costs at container start: CreateContainer + StartContainer of a busybox
container, plain, with an image volume, with a sub-path image volume, and under the
RuntimeDefault seccomp allow list, through the CRI of a real pinnaced (runc, conmon) on this
machine. The variants run in alternating rounds in one host-network pod, so load on the
machine falls on all of them alike; each container is removed after its start is measured.
Then the pod lifecycle (RunPodSandbox, CreateContainer + StartContainer, StopPodSandbox +
RemovePodSandbox) of a pod in its own user namespace (``userns_options`` mode POD: the user
namespace helper, id-mapped layers), and of ones whose container has an id-mapped volume (a
host directory, or an image volume, as the kubelet sends them), next to a plain pod, also in
alternating rounds, with the daemon's CPU seconds per lifecycle (``/proc/<pid>/stat``).

    .venv/bin/python -m benchmarks.bench_isolation [--runs 30] [--pods-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.workload import pct  # noqa: E402
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.layers import TarBuilder  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


def _volume_image() -> images.Image:
    tar = TarBuilder().directory("/tools").directory("/tools/bin")
    for n in range(200):  # a volume of some size: 200 small files
        tar.file(f"/tools/bin/f{n}", f"file {n}\n")
    return images.ImageBuilder(config=images.ImageConfig(cmd=None)).add_layer(tar.build()).build()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pods-only", action="store_true", help="only the pod lifecycles")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-") as tmp:
        base = Path(tmp)
        base.chmod(0o711)  # a user-namespaced pod's root reaches its rootfs by path
        with Registry.plain(parent_dir=base) as registry:
            push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
            push_image(registry.url, "bench/volume", "v1", _volume_image())
            box = f"{registry.host}/bench/busybox:v1"
            volume = f"{registry.host}/bench/volume:v1"
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            (base / "d").mkdir()
            daemon = Pinnaced(base / "d", registry_hosts_dir=hosts)
            daemon.short_dir.chmod(0o711)
            daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
            (daemon.cni_conf_dir / "10-lo.conflist").write_text(
                json.dumps({"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]})
            )
            with daemon:
                runtime, image_api = daemon.clients()
                for ref in (box, volume):
                    image_api.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)))
                if not args.pods_only:
                    run(runtime, box, volume, args.runs)
                assert daemon.pid is not None
                pod_lifecycles(runtime, box, volume, args.runs, daemon_pid=daemon.pid, base=base)
    return 0


def _cpu_seconds(pid: int) -> float:
    """The user + system CPU seconds process ``pid`` has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pod_lifecycles(runtime, box: str, volume: str, runs: int, *, daemon_pid: int, base: Path):
    """A plain pod, a user-namespaced one (own network, IPC, UTS; PID per container), and a
    user-namespaced one whose container has what the kubelet sends for a ``hostUsers: false``
    volume, with the pod's mappings (id-mapped by pinnace): an emptyDir-like host directory,
    or an image volume; each with one container, alternating; per phase, and the daemon's
    CPU per lifecycle."""
    mapping = pb.IDMapping(host_id=100000, container_id=0, length=65536)
    userns = pb.UserNamespace(mode=pb.POD, uids=[mapping], gids=[mapping])
    empty_dir = base / "empty-dir"
    empty_dir.mkdir(mode=0o755, exist_ok=True)
    host_path = pb.Mount(
        container_path="/data",
        host_path=str(empty_dir),
        uidMappings=[mapping],
        gidMappings=[mapping],
    )
    image_volume = pb.Mount(
        container_path="/v", image=pb.ImageSpec(image=volume), readonly=True,
        uidMappings=[mapping], gidMappings=[mapping],
    )  # fmt: skip
    variants = {
        "plain pod": (None, []),
        "userns pod (POD)": (userns, []),
        "userns + id-mapped dir": (userns, [host_path]),
        "userns + image volume": (userns, [image_volume]),
    }
    phases = ("RunPodSandbox", "Create+StartContainer", "Stop+RemovePodSandbox", "total")
    times = {k: {p: [] for p in phases} for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for n in range(runs + 1):  # the first round warms up
        for label, (user_ns, mounts) in variants.items():
            ns = pb.NamespaceOption(pid=pb.CONTAINER)
            if user_ns is not None:
                ns.userns_options.CopyFrom(user_ns)
            name = f"bench-{uuid.uuid4().hex[:8]}"
            pod = pb.PodSandboxConfig(
                metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="b"),
                hostname=name,
                linux=pb.LinuxPodSandboxConfig(
                    security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)
                ),
            )
            config = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="c"),
                image=pb.ImageSpec(image=box),
                command=["sleep", "3600"],
                mounts=mounts,
                linux=pb.LinuxContainerConfig(
                    security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)
                ),
            )
            c0 = _cpu_seconds(daemon_pid)
            t0 = time.perf_counter()
            pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id
            t1 = time.perf_counter()
            cid = runtime.CreateContainer(
                pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
            ).container_id
            runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
            t2 = time.perf_counter()
            runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            t3 = time.perf_counter()
            c1 = _cpu_seconds(daemon_pid)
            if n:
                for phase, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                    times[label][phase].append(value)
                cpu[label].append(c1 - c0)
    print(f"\nPod lifecycle with one container, {runs} runs each, alternating (ms, median / p90)")
    print(f"{'variant':27}" + "".join(f" {p:>24}" for p in phases) + "  daemon CPU ms/pod")
    for label, by_phase in times.items():
        cells = "".join(
            f" {statistics.median(v) * 1000:12.1f} / {pct(v, 0.9) * 1000:8.1f}"
            for v in by_phase.values()
        )
        print(f"{label:27}{cells}  {statistics.mean(cpu[label]) * 1000:10.1f}")
    plain = statistics.median(times["plain pod"]["total"])
    for label in list(variants)[1:]:
        total = statistics.median(times[label]["total"])
        print(f"{label} / plain (total, median): {total / plain:.2f}x")


def run(runtime, box: str, volume: str, runs: int) -> None:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    pod = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="bench"),
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER)
            )
        ),
    )
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id
    unconfined = pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)
    default = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)
    variants = {
        "plain (unconfined)": ((), unconfined),
        "image volume": ((pb.Mount(container_path="/v", image=pb.ImageSpec(image=volume),
                                   readonly=True),), unconfined),
        "sub-path image volume": ((pb.Mount(container_path="/v", image=pb.ImageSpec(image=volume),
                                            image_sub_path="tools/bin", readonly=True),),
                                  unconfined),
        "RuntimeDefault seccomp": ((), default),
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for n in range(runs + 1):  # the first round warms up
            for label, (mounts, seccomp) in variants.items():
                config = pb.ContainerConfig(
                    metadata=pb.ContainerMetadata(name=f"c{n}", attempt=len(times[label])),
                    image=pb.ImageSpec(image=box),
                    command=["sleep", "3600"],
                    mounts=list(mounts),
                    linux=pb.LinuxContainerConfig(
                        security_context=pb.LinuxContainerSecurityContext(
                            seccomp=seccomp, namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                        )
                    ),
                )
                start = time.perf_counter()
                cid = runtime.CreateContainer(
                    pb.CreateContainerRequest(
                        pod_sandbox_id=pod_id, config=config, sandbox_config=pod
                    )
                ).container_id
                runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
                elapsed = time.perf_counter() - start
                if n:
                    times[label].append(elapsed)
                runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
        execs = exec_latency(runtime, pod_id, pod, box, runs, unconfined, default)
    finally:
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    plain = statistics.median(times["plain (unconfined)"])
    print(f"CreateContainer + StartContainer, {runs} runs each, alternating (ms)")
    print(f"{'variant':26} {'median':>8} {'p90':>8} {'vs plain':>9}")
    for label, values in times.items():
        med = statistics.median(values)
        print(f"{label:26} {med * 1000:8.1f} {pct(values, 0.9) * 1000:8.1f} {med / plain:8.2f}x")
    print(f"\nExecSync `true` (an exec probe), {runs} runs each, alternating (ms)")
    base = statistics.median(execs["unconfined"])
    for label, values in execs.items():
        med = statistics.median(values)
        print(f"{label:26} {med * 1000:8.1f} {pct(values, 0.9) * 1000:8.1f} {med / base:8.2f}x")


def exec_latency(runtime, pod_id, pod, box, runs, unconfined, default) -> dict[str, list[float]]:
    """ExecSync `true` in a running container, unconfined and under RuntimeDefault (runc
    applies the container's seccomp filter to every exec)."""
    ids = {}
    for label, seccomp in (("unconfined", unconfined), ("RuntimeDefault seccomp", default)):
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=f"exec-{label.split()[0].lower()}"),
            image=pb.ImageSpec(image=box),
            command=["sleep", "3600"],
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    seccomp=seccomp, namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
        )
        cid = runtime.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
        ).container_id
        runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
        ids[label] = cid
    out: dict[str, list[float]] = {label: [] for label in ids}
    for n in range(runs + 1):
        for label, cid in ids.items():
            start = time.perf_counter()
            runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10))
            if n:
                out[label].append(time.perf_counter() - start)
    for cid in ids.values():
        runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
