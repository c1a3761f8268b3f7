"""``pinnace play pod.yaml [--down]``: run a Kubernetes Pod manifest without a kubelet.

``play`` validates and translates the manifest (:mod:`cri.cli.manifest`), creates the host
directories its volumes need, pulls the images its pull policies ask for (with progress, through
pinnace's Images API), runs the sandbox, runs init containers one at a time to completion, then
creates and starts the containers in order, and prints the ids.

A play that fails part way (a pull, an init container exiting non-zero, a container that cannot
start, Ctrl-C) removes everything it made: the pod with its containers, and the directories
(:mod:`cri.cli.playdirs`). The one-line error names the step and the container; ``--keep``
leaves the failed pod in place for ``pinnace logs``/``inspect`` instead, to be removed with
``play --down``.

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
import uuid
from pathlib import Path
from typing import Any

import grpc

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli import manifest, playdirs
from cri.cli.client import Client
from cri.cli.failures import describe
from cri.cli.images import follow_progress
from cri.cli.manifest_load import compose, with_location
from cri.cli.pods import remove_pod
from cri.cli.render import add_output_option, dump, short_id, structured, table
from runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PinnaceError,
)

_KINDS = {
    "Directory": stat.S_ISDIR,
    "File": stat.S_ISREG,
    "Socket": stat.S_ISSOCK,
    "CharDevice": stat.S_ISCHR,
    "BlockDevice": stat.S_ISBLK,
}


def _read_manifest(path: str) -> str:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        source = "<stdin>" if path == "-" else path
        raise InvalidArgument(
            f"{source}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset"
            f" {exc.start}); a Pod manifest is YAML"
        ) from None
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}") from None


def find_pods(c: Client, name: str, namespace: str) -> list[pb.PodSandbox]:
    """Sandboxes carrying kubelet's name and namespace labels for this pod."""
    return c.list_pods(
        labels={manifest.POD_NAME_LABEL: name, manifest.POD_NAMESPACE_LABEL: namespace}
    )


def taken_userns_host_ids(c: Client) -> list[int]:
    """Where the user-namespace mappings of the daemon's pods start (their host uids), so a
    new pod gets a range of its own. Two plays at once may pick the same one: the pods then
    share host ids (less isolated from each other, still not the node's)."""
    out: list[int] = []
    for sandbox in c.list_pods():
        try:
            status = c.pod_status(sandbox.id).status
        except grpc.RpcError:
            continue  # removed meanwhile
        userns = status.linux.namespaces.options.userns_options
        out.extend(m.host_id for m in userns.uids)
    return out


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


def pull_images(c: Client, plan: manifest.PodPlan, *, quiet: bool) -> None:
    """Pull what the pull policies ask for, each image once; check runAsNonRoot against the
    image's user."""
    pulled: set[str] = set()
    for container in (*plan.init_containers, *plan.containers):
        image = container.config.image.image
        present = c.find_image(image)
        if container.pull_policy == "Never" and present is None:
            raise FailedPrecondition(
                f"container {container.name}: image {image} is not present and imagePullPolicy"
                " is Never (ErrImageNeverPull)"
            )
        wanted = container.pull_policy == "Always" or present is None
        if wanted and image not in pulled:
            follow_progress(c.pull(image), quiet=quiet)
            pulled.add(image)
            present = c.find_image(image)
        if present is not None:
            uid = present.uid.value if present.HasField("uid") else None
            manifest.check_run_as_non_root(container, image_uid=uid, image_user=present.username)


class _Step:
    """What play is doing now, for the failure message."""

    def __init__(self) -> None:
        self.text = "preparing"


def _run(
    c: Client,
    plan: manifest.PodPlan,
    step: _Step,
    made: dict[str, Any],
    *,
    quiet: bool,
    init_timeout: float,
) -> None:
    step.text = "pulling images"
    pull_images(c, plan, quiet=quiet)
    step.text = "running the pod sandbox"
    made["pod"] = c.run_pod(plan.sandbox, runtime_handler=plan.runtime_handler)
    containers: dict[str, str] = made["containers"]
    for init in plan.init_containers:
        step.text = f"starting init container {init.name}"
        containers[init.name] = c.create_container(made["pod"], init.config, plan.sandbox)
        c.start_container(containers[init.name])
        step.text = f"waiting for init container {init.name}"
        status = c.wait_exited(containers[init.name], timeout=init_timeout)
        if status.exit_code != 0:
            raise FailedPrecondition(
                f"init container {init.name} exited with {status.exit_code}"
                + (f" ({status.reason})" if status.reason else "")
            )
    for container in plan.containers:
        step.text = f"starting container {container.name}"
        containers[container.name] = c.create_container(made["pod"], container.config, plan.sandbox)
        c.start_container(containers[container.name])


def _clean_up(
    c: Client, plan: manifest.PodPlan, made: dict[str, Any], roots: playdirs.PlayRoots
) -> str:
    """Remove what a failed play made; returns what to add to the failure message."""
    try:
        if made["pod"]:
            remove_pod(c, made["pod"])
    except grpc.RpcError as exc:
        return (
            f"; removing pod {short_id(made['pod'])} failed too"
            f" ({describe(exc, address=c.address).line}): `pinnace play --down` it"
        )
    finally:
        playdirs.remove_dirs(playdirs.owned(plan.namespace, plan.name, plan.uid, roots))
    what = f"pod {short_id(made['pod'])} and its directories" if made["pod"] else "its directories"
    return (
        f"; removed {what} (rerun with --keep to leave a failed pod for `pinnace logs`/`inspect`)"
    )


def play(
    c: Client,
    plan: manifest.PodPlan,
    *,
    roots: playdirs.PlayRoots,
    quiet: bool,
    init_timeout: float,
    keep: bool = False,
) -> dict[str, Any]:
    """Run a planned pod; returns ``{"pod", "name", "namespace", "containers": {name: id}}``.
    On failure removes what it made (unless ``keep``) and raises FailedPrecondition (or the
    original error kind) with one line naming the step."""
    existing = find_pods(c, plan.name, plan.namespace)
    if existing:
        raise AlreadyExists(
            f"pod {plan.namespace}/{plan.name} exists already ({short_id(existing[0].id)});"
            " remove it with `pinnace play --down`"
        )
    made: dict[str, Any] = {"pod": "", "containers": {}}
    step = _Step()
    try:
        prepare_host_paths(plan, play_root=roots.play_root)
        _run(c, plan, step, made, quiet=quiet, init_timeout=init_timeout)
    except (grpc.RpcError, PinnaceError, OSError, KeyboardInterrupt) as exc:
        if isinstance(exc, grpc.RpcError):
            cause = describe(exc, address=c.address)  # type: ignore[arg-type]
            if cause.cause == "daemon-unreachable":
                raise
            reason = cause.line
        elif isinstance(exc, OSError):
            reason = f"{exc.strerror or exc}: {exc.filename}"
        elif isinstance(exc, KeyboardInterrupt):
            reason = "interrupted"
        else:
            reason = str(exc)
        if keep and made["pod"]:
            first = next(iter(reversed(made["containers"])), "")
            pod = short_id(made["pod"])
            hint = (
                f"; pod {pod} is kept: `pinnace ps -a -p {pod}`,"
                + (f" `pinnace logs {first}`," if first else "")
                + " `pinnace play --down FILE` removes it"
            )
        else:
            hint = _clean_up(c, plan, made, roots)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise FailedPrecondition(
            f"play {plan.namespace}/{plan.name}: {step.text}: {reason}{hint}"
        ) from None
    return {
        "pod": made["pod"],
        "name": plan.name,
        "namespace": plan.namespace,
        "containers": made["containers"],
    }


def cmd_play(c: Client, args: argparse.Namespace) -> int:
    text = _read_manifest(args.file)
    source = "<stdin>" if args.file == "-" else args.file
    pod = manifest.load_pod(text, source=source)
    resolv = None
    if args.resolv_conf:
        try:
            resolv = Path(args.resolv_conf).read_text()
        except FileNotFoundError:
            resolv = None
    roots = playdirs.PlayRoots(
        log_root=os.path.abspath(args.log_root), play_root=os.path.abspath(args.play_root)
    )
    userns_host_id = manifest.USERNS_LENGTH
    if pod.spec is not None and pod.spec.host_users is False and not args.down:
        userns_host_id = manifest.free_userns_host_id(taken_userns_host_ids(c))
    try:
        plan = manifest.plan_pod(
            pod,
            uid=str(uuid.uuid4()),
            log_root=roots.log_root,
            play_root=roots.play_root,
            host_resolv_conf=resolv,
            userns_host_id=userns_host_id,
        )
    except InvalidArgument as exc:
        raise InvalidArgument(
            with_location(str(exc), source=source, root=compose(text, source=source))
        ) from None
    if args.down:
        pods = find_pods(c, plan.name, plan.namespace)
        if not pods:
            raise NotFound(f"no pod {plan.namespace}/{plan.name}")
        removed = []
        for sandbox in pods:
            playdirs.remove(remove_pod(c, sandbox.id), roots)
            removed.append(sandbox.id)
        if structured(args.output):
            print(dump({"removed": removed}, args.output))
        else:
            print("\n".join(removed))
        return 0
    result = play(
        c,
        plan,
        roots=roots,
        quiet=args.quiet,
        init_timeout=args.init_timeout,
        keep=args.keep,
    )
    if structured(args.output):
        print(dump(result, args.output))
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
    p.add_argument(
        "--keep", action="store_true", help="leave a pod that failed to start, for inspection"
    )
    add_output_option(p)
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
