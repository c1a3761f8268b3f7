"""pinnace's main job, end to end on this machine, leaving nothing behind:

1. start a real registry (Debian's docker-registry) on a free loopback port;
2. build a busybox image from Debian's busybox-static and push it there;
3. start pinnaced on its embedded default configuration (only paths moved to a temporary
   directory, and a hosts.toml that routes the local registry over plain HTTP);
4. with the pinnace CLI: version, info, pull (with progress), ls, inspect, push to a new tag,
   import an OCI archive, rm.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


def cli(socket: Path, *args: str) -> None:
    argv = [str(REPO / ".venv/bin/pinnace"), "--address", f"unix://{socket}", *args]
    print(f"\n$ pinnace {' '.join(args)}", flush=True)
    subprocess.run(argv, check=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pinnace-demo-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            image = images.busybox_image()
            push_image(registry.url, "demo/busybox", "1.35", image)
            ref = f"{registry.host}/demo/busybox:1.35"
            print(f"registry at {registry.url}; pushed {ref}")
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            (base / "daemon").mkdir()
            with Pinnaced(base / "daemon", registry_hosts_dir=hosts) as daemon:
                sock = daemon.socket
                cli(sock, "version")
                cli(sock, "info")
                cli(sock, "image", "pull", ref)
                cli(sock, "image", "ls")
                cli(sock, "image", "inspect", ref)
                cli(sock, "image", "push", ref, f"{registry.host}/demo/busybox:pushed")
                archive = images.write_oci_archive(image, base / "busybox.tar", ref_name="1.35")
                cli(sock, "image", "import", str(archive), "--name", "demo.local/busybox")
                cli(sock, "image", "ls")
                cli(sock, "image", "rm", ref)
                cli(sock, "image", "ls", "-o", "json")
    print("\ndemo finished: registry and pinnaced stopped, temporary files removed")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
