"""pinnace's main job, end to end on this machine, leaving nothing behind:

1. start a real registry (Debian's docker-registry) on a free loopback port;
2. build a busybox image (and a 'pause' image) from Debian's busybox-static and push them;
3. start pinnaced on its embedded default configuration, with only its paths moved to a
   temporary directory, a hosts.toml that routes the local registry over plain HTTP, and a CNI
   bridge network of its own (10.213.251.0/24, no masquerading);
4. with the pinnace CLI: version, info, image pull (with progress), ls, inspect, push, import;
   then run a real pod from deploy/examples/pod.yaml, list it, show its log and an exec, and
   take it down again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.iptables import hostport_chains, remove_hostport_chains  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

BRIDGE = "pndemo0"


def cli(socket: Path, *args: str, env: dict[str, str] | None = None) -> None:
    argv = [str(REPO / ".venv/bin/pinnace"), "--address", f"unix://{socket}", *args]
    print(f"\n$ pinnace {' '.join(args)}", flush=True)
    env = dict(env if env is not None else os.environ)
    env["PYTHONPATH"] = str(REPO)  # this checkout's code, whichever checkout the venv installed
    subprocess.run(argv, check=True, env=env)


@contextlib.contextmanager
def _removing_pods(daemon: Pinnaced) -> Iterator[None]:
    """However the demo ends (Ctrl-C included), remove its pods through the CRI before the
    daemon stops, so no cgroup, netns or CNI IP reservation is left behind."""
    try:
        yield
    finally:
        from cri.api.runtime.v1 import api_pb2 as pb

        for sandbox in daemon.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            daemon.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox.id))
            daemon.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))


#: host-local's default dataDir for the demo network (reservations, its lock, the last address)
IPAM_DIR = Path("/var/lib/cni/networks/demo")


def _remove_ipam_dir(*, existed: bool) -> None:
    """host-local's directory for the demo network, when this run made it: removed once it
    holds no reservation any more (only host-local's lock and last-reserved files)."""
    if existed or not IPAM_DIR.is_dir():
        return
    names = [p.name for p in IPAM_DIR.iterdir()]
    if all(name == "lock" or name.startswith("last_reserved_ip") for name in names):
        shutil.rmtree(IPAM_DIR, ignore_errors=True)


def network_config() -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "demo",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.213.251.0/24"}]]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def main() -> int:
    chains = hostport_chains()
    ipam_existed = IPAM_DIR.exists()
    with tempfile.TemporaryDirectory(prefix="pinnace-demo-") as tmp:
        base = Path(tmp)
        try:
            with Registry.plain(parent_dir=base) as registry:
                image = images.busybox_image()
                pause = images.busybox_image(
                    config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
                )
                push_image(registry.url, "demo/busybox", "1.35", image)
                # deploy/examples/pod.yaml names docker.io's busybox: the demo's hosts.toml
                # sends docker.io to the local registry instead (no internet needed)
                push_image(registry.url, "library/busybox", "1.36", image)
                push_image(registry.url, "demo/pause", "1", pause)
                ref = f"{registry.host}/demo/busybox:1.35"
                print(f"registry at {registry.url}; pushed {ref}")
                hosts = base / "certs.d"
                hosts_toml(hosts, registry.host, plain_http=True)
                hosts_toml(hosts, "docker.io", plain_http=True, server=registry.url)
                (base / "daemon").mkdir()
                daemon = Pinnaced(
                    base / "daemon",
                    registry_hosts_dir=hosts,
                    config_text=f'[images]\nsandbox_image = "{registry.host}/demo/pause:1"\n',
                    own_session=True,  # a Ctrl-C stops the demo, which then cleans up through it
                )
                daemon.cni_conf_dir.mkdir(parents=True)
                (daemon.cni_conf_dir / "10-demo.conflist").write_text(json.dumps(network_config()))
                with daemon, _removing_pods(daemon):
                    sock = daemon.socket
                    cli(sock, "version")
                    cli(sock, "info")
                    cli(sock, "image", "pull", ref)
                    cli(sock, "image", "ls")
                    cli(sock, "image", "inspect", ref)
                    cli(sock, "image", "push", ref, f"{registry.host}/demo/busybox:pushed")
                    archive = images.write_oci_archive(image, base / "bb.tar", ref_name="1.35")
                    cli(sock, "image", "import", str(archive), "--name", "demo.local/busybox")

                    manifest = REPO / "deploy/examples/pod.yaml"
                    env = dict(os.environ)
                    env["PINNACE_LOG_ROOT"] = str(base / "pod-logs")
                    env["PINNACE_PLAY_ROOT"] = str(base / "play")
                    cli(sock, "play", str(manifest), env=env)
                    cli(sock, "pods", env=env)
                    cli(sock, "ps", env=env)
                    cli(sock, "logs", "greeter", env=env)
                    cli(
                        sock,
                        "exec",
                        "greeter",
                        "--",
                        "sh",
                        "-c",
                        "hostname; ip -o -4 addr show eth0",
                        env=env,
                    )
                    cli(sock, "play", "--down", str(manifest), env=env)
                    cli(sock, "pods", env=env)
                    cli(sock, "image", "rm", "--all", ref)
                    cli(sock, "image", "ls")
        finally:
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
            remove_hostport_chains(keep=chains)
            _remove_ipam_dir(existed=ipam_existed)
    print("\ndemo finished: pod removed, registry and pinnaced stopped, temporary files removed")
    return 0


def run() -> int:
    try:
        return main()
    except KeyboardInterrupt:
        print("\ndemo interrupted: its pod, pinnaced, the registry and its files are removed")
        return 130
    except subprocess.CalledProcessError as exc:
        if exc.returncode == 130:  # a CLI command saw the Ctrl-C first
            print("\ndemo interrupted: its pod, pinnaced, the registry and its files are removed")
            return 130
        print(f"\ndemo failed: {' '.join(map(str, exc.cmd[1:]))} exited {exc.returncode}")
        return 1


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(run())
