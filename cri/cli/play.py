"""``pinnace play pod.yaml [--down]``: run a Kubernetes Pod manifest without a kubelet.

``play`` validates and translates the manifest (:mod:`cri.cli.manifest`), creates the host
directories its volumes need, pulls the images its pull policies ask for (with progress, through
pinnace's Images API), runs the sandbox, runs init containers one at a time to completion, then
creates and starts the containers in order, and prints the ids. A pod that fails part way is
left in place for ``pinnace logs``/``inspect``; ``play --down`` removes it.

``play --down`` finds the pod by the ``io.kubernetes.pod.name``/``namespace`` labels, stops its
containers with the pod's grace period, removes the sandbox and the log and emptyDir
directories play made. Containers run once: there is no restart policy without a kubelet.

The node paths (env or option): ``PINNACE_LOG_ROOT`` (default ``/var/log/pods``) and
``PINNACE_PLAY_ROOT`` (default ``/var/lib/pinnace-play``, where emptyDir volumes live).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from cri.api.pinnace.images.v1 import images_pb2 as ipb
from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli import manifest
from cri.cli.pods import remove_pod, reports_errors
from cri.cli.render import ProgressView, table, to_json
from runtime.errors import AlreadyExists, DeadlineExceeded, FailedPrecondition, NotFound

#: How often an init container's status is asked for while play waits for it to finish.
INIT_POLL_INTERVAL = 0.2
_KINDS = {
    "Directory": stat.S_ISDIR,
    "File": stat.S_ISREG,
    "Socket": stat.S_ISSOCK,
    "CharDevice": stat.S_ISCHR,
    "BlockDevice": stat.S_ISBLK,
}


def _read_manifest(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}") from None


def find_pods(c: Any, name: str, namespace: str) -> list[pb.PodSandbox]:
    """Sandboxes carrying kubelet's name and namespace labels for this pod."""
    selector = {manifest.POD_NAME_LABEL: name, manifest.POD_NAMESPACE_LABEL: namespace}
    reply = c.runtime.ListPodSandbox(
        pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(label_selector=selector)),
        timeout=c.timeout,
    )
    return list(reply.items)


def prepare_host_paths(plan: manifest.PodPlan, *, play_root: str) -> None:
    """Check the hostPaths that must exist, then create the directories and files the pod's
    volumes need. emptyDir directories are world-writable, as kubelet makes them."""
    for check in plan.host_path_checks:
        try:
            mode = os.stat(check.path).st_mode
        except FileNotFoundError:
            raise FailedPrecondition(f"{check.field}: {check.path} does not exist") from None
        if not _KINDS[check.kind](mode):
            raise FailedPrecondition(f"{check.field}: {check.path} is not a {check.kind}")
    volume_root = os.path.join(play_root, plan.uid)
    for directory in plan.directories:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        if os.path.dirname(directory) == volume_root:
            os.chmod(directory, 0o777)
    for file in plan.files:
        os.makedirs(os.path.dirname(file), exist_ok=True)
        Path(file).touch(exist_ok=True)


def _image_status(c: Any, image: str) -> pb.Image | None:
    reply = c.image.ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), timeout=c.timeout
    )
    return reply.image if reply.HasField("image") else None


def pull_images(c: Any, plan: manifest.PodPlan, *, quiet: bool) -> None:
    """Pull what the pull policies ask for, each image once; check runAsNonRoot against the
    image's user."""
    pulled: set[str] = set()
    for container in (*plan.init_containers, *plan.containers):
        image = container.config.image.image
        present = _image_status(c, image)
        if container.pull_policy == "Never" and present is None:
            raise FailedPrecondition(
                f"container {container.name}: image {image} is not present and imagePullPolicy"
                " is Never (ErrImageNeverPull)"
            )
        wanted = container.pull_policy == "Always" or present is None
        if wanted and image not in pulled:
            _pull(c, image, quiet=quiet)
            pulled.add(image)
            present = _image_status(c, image)
        if present is not None:
            uid = present.uid.value if present.HasField("uid") else None
            manifest.check_run_as_non_root(container, image_uid=uid, image_user=present.username)


def _pull(c: Any, image: str, *, quiet: bool) -> None:
    view = ProgressView(sys.stderr, tty=sys.stderr.isatty() and not quiet)
    for message in c.images.Pull(ipb.PullRequest(image=image, credentials=ipb.Credentials())):
        if not quiet:
            view.update(
                digest=message.digest,
                phase=message.phase,
                offset=message.offset,
                total=message.total,
            )


def _wait_exit(c: Any, container_id: str, *, timeout: float) -> pb.ContainerStatus:
    """The status of a container once it has exited. The CRI has no call that blocks on an
    exit and status is answered from the daemon's memory, so a modest poll is the client's
    way to wait."""
    deadline = time.monotonic() + timeout
    while True:
        status = c.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id), timeout=c.timeout
        ).status
        if status.state == pb.CONTAINER_EXITED:
            return status
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"init container {container_id} still runs after {timeout}s")
        time.sleep(INIT_POLL_INTERVAL)


def _create_start(c: Any, pod_id: str, plan: manifest.PodPlan, config: pb.ContainerConfig) -> str:
    reply = c.runtime.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=plan.sandbox
        ),
        timeout=max(c.timeout, 120),
    )
    c.runtime.StartContainer(
        pb.StartContainerRequest(container_id=reply.container_id), timeout=max(c.timeout, 120)
    )
    return str(reply.container_id)


def play(
    c: Any, plan: manifest.PodPlan, *, play_root: str, quiet: bool, init_timeout: float
) -> dict[str, Any]:
    """Run a planned pod; returns ``{"pod", "name", "namespace", "containers": {name: id}}``."""
    existing = find_pods(c, plan.name, plan.namespace)
    if existing:
        raise AlreadyExists(
            f"pod {plan.namespace}/{plan.name} exists already ({existing[0].id[:13]});"
            " remove it with `pinnace play --down`"
        )
    prepare_host_paths(plan, play_root=play_root)
    pull_images(c, plan, quiet=quiet)
    pod_id = c.runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=plan.sandbox, runtime_handler=plan.runtime_handler),
        timeout=max(c.timeout, 120),
    ).pod_sandbox_id
    containers: dict[str, str] = {}
    for init in plan.init_containers:
        containers[init.name] = _create_start(c, pod_id, plan, init.config)
        status = _wait_exit(c, containers[init.name], timeout=init_timeout)
        if status.exit_code != 0:
            raise FailedPrecondition(
                f"init container {init.name} exited with {status.exit_code} ({status.reason});"
                f" pod {pod_id[:13]} is left for `pinnace logs`, remove it with"
                " `pinnace play --down`"
            )
    for container in plan.containers:
        containers[container.name] = _create_start(c, pod_id, plan, container.config)
    return {
        "pod": pod_id,
        "name": plan.name,
        "namespace": plan.namespace,
        "containers": containers,
    }


@reports_errors
def cmd_play(c: Any, args: argparse.Namespace) -> int:
    pod = manifest.load_pod(_read_manifest(args.file))
    resolv = None
    if args.resolv_conf:
        try:
            resolv = Path(args.resolv_conf).read_text()
        except FileNotFoundError:
            resolv = None
    plan = manifest.plan_pod(
        pod,
        uid=str(uuid.uuid4()),
        log_root=args.log_root,
        play_root=args.play_root,
        host_resolv_conf=resolv,
    )
    if args.down:
        pods = find_pods(c, plan.name, plan.namespace)
        if not pods:
            raise NotFound(f"no pod {plan.namespace}/{plan.name}")
        removed = []
        for sandbox in pods:
            remove_pod(c, sandbox.id)
            removed.append(sandbox.id)
        if args.output == "json":
            print(to_json({"removed": removed}))
        else:
            print("\n".join(removed))
        return 0
    result = play(
        c, plan, play_root=args.play_root, quiet=args.quiet, init_timeout=args.init_timeout
    )
    if args.output == "json":
        print(to_json(result))
        return 0
    rows = [["pod", plan.name, result["pod"]]]
    rows += [["container", name, cid] for name, cid in result["containers"].items()]
    print(table(["KIND", "NAME", "ID"], rows))
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``play`` to the ``pinnace`` command's subparsers."""
    p = sub.add_parser("play", help="run (or with --down remove) a Kubernetes Pod manifest")
    p.add_argument("file", help="the Pod manifest (YAML; - for stdin)")
    p.add_argument("--down", action="store_true", help="remove the pod the manifest describes")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument("--quiet", "-q", action="store_true", help="no pull progress")
    p.add_argument(
        "--log-root",
        default=os.environ.get("PINNACE_LOG_ROOT", manifest.DEFAULT_LOG_ROOT),
        help="where pod log directories go (env PINNACE_LOG_ROOT)",
    )
    p.add_argument(
        "--play-root",
        default=os.environ.get("PINNACE_PLAY_ROOT", manifest.DEFAULT_PLAY_ROOT),
        help="where emptyDir volumes go (env PINNACE_PLAY_ROOT)",
    )
    p.add_argument(
        "--resolv-conf",
        default="/etc/resolv.conf",
        help="the node's resolv.conf pods start from ('' for none)",
    )
    p.add_argument(
        "--init-timeout", type=float, default=300.0, help="seconds an init container may run"
    )
    p.set_defaults(func=cmd_play)
