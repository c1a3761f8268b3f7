"""``pinnace pods | ps | inspect | logs | exec | stop | rm``: pods and containers over the CRI.

Terms:
  id prefix  every command that takes an id accepts a unique prefix of a pod's or container's
             id (resolved by listing), or failing that an exact pod or container name.
  CRI log    the file conmon writes for a container (``ContainerStatus.log_path``), one record a
             line: ``<RFC3339Nano> <stdout|stderr> <P|F> <text>``; ``P`` records are pieces of a
             longer line that the following records of the same stream complete. ``logs`` runs on
             the node and reads the file directly, as ``crictl logs`` does.

Tables are for people (``crictl``'s columns); ``-o json`` prints the CRI messages in protobuf's
JSON mapping (``{"items": [...]}`` for pods, ``{"containers": [...]}`` for ps), as crictl does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import grpc
from google.protobuf.json_format import MessageToDict as _message_to_dict

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli import manifest, playdirs
from cri.cli.client import Client, ContainerEvents
from cri.cli.render import add_output_option, dump, short_id, structured, table
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound

#: How often ``logs -f`` looks for new bytes while it waits for the container's stop event.
FOLLOW_INTERVAL = 0.2

_POD_STATES = {pb.SANDBOX_READY: "Ready", pb.SANDBOX_NOTREADY: "NotReady"}
_CONTAINER_STATES = {
    pb.CONTAINER_CREATED: "Created",
    pb.CONTAINER_RUNNING: "Running",
    pb.CONTAINER_EXITED: "Exited",
    pb.CONTAINER_UNKNOWN: "Unknown",
}


# -- pure helpers ------------------------------------------------------------------------
def message_to_dict(message: Any) -> dict[str, Any]:
    """A CRI message in protobuf's JSON mapping, zero values included (``"state":
    "SANDBOX_READY"`` is the enum's zero), as crictl prints them."""
    return dict(_message_to_dict(message, always_print_fields_with_no_presence=True))


def human_age(seconds: float) -> str:
    """How long ago, in the words ``crictl`` and ``docker`` use ("3 minutes ago")."""
    if seconds < 1:
        return "Less than a second ago"
    if seconds < 60:
        n = int(seconds)
        return f"{n} second{'s' if n != 1 else ''} ago"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute ago"
    if minutes < 60:
        return f"{minutes} minutes ago"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour ago"
    if hours < 48:
        return f"{hours} hours ago"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days ago"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks ago"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months ago"
    return f"{int(seconds / 3600 / 24 / 365)} years ago"


def _age(created_at_ns: int) -> str:
    return human_age(max(0.0, time.time() - created_at_ns / 1e9))


def parse_labels(pairs: Sequence[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; raises InvalidArgument for a pair without ``=``."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"label selector {pair!r} is not key=value")
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class LogLine:
    """A whole line a container wrote: its stream, the time of its first piece, and its bytes
    (ending with a newline unless the container has not finished the line)."""

    stream: str
    timestamp: str
    content: bytes


class LogAssembler:
    """Turns CRI log records back into the lines the container wrote: ``P`` records are kept
    per stream until the ``F`` record that ends them. Feed it bytes in any chunks."""

    def __init__(self) -> None:
        self._torn = b""
        self._pending: dict[str, tuple[str, bytearray]] = {}

    def feed(self, data: bytes) -> list[LogLine]:
        """Complete lines found in ``data`` (plus what earlier calls left unfinished)."""
        lines = (self._torn + data).split(b"\n")
        self._torn = lines.pop()
        out = []
        for raw in lines:
            parts = raw.split(b" ", 3)
            if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
                continue  # not a CRI record (a torn write after a crash); skip it
            timestamp, stream = parts[0].decode(errors="replace"), parts[1].decode()
            tag = parts[2].split(b":", 1)[0]
            content = parts[3] if len(parts) == 4 else b""
            started, buffer = self._pending.pop(stream, (timestamp, bytearray()))
            buffer += content
            if tag == b"P":
                self._pending[stream] = (started, buffer)
            else:
                out.append(LogLine(stream, started, bytes(buffer) + b"\n"))
        return out

    def flush(self) -> list[LogLine]:
        """Lines whose end was never written (the container stopped mid-line), unterminated."""
        out = [LogLine(stream, ts, bytes(buf)) for stream, (ts, buf) in self._pending.items()]
        self._pending.clear()
        return out


# -- id resolution -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """What an id prefix or name resolved to: ``kind`` is ``pod`` or ``container``."""

    kind: str
    id: str


def resolve(c: Client, text: str, *, kinds: Sequence[str] = ("pod", "container")) -> Target:
    """The one pod or container ``text`` names: an exact id, else a unique id prefix, else a
    unique exact name. Raises NotFound or InvalidArgument (ambiguous)."""
    if not text:
        raise InvalidArgument("an id or name is required")
    candidates: list[tuple[Target, str]] = []
    if "pod" in kinds:
        for p in c.list_pods():
            candidates.append((Target("pod", p.id), p.metadata.name))
    if "container" in kinds:
        for x in c.list_containers():
            candidates.append((Target("container", x.id), x.metadata.name))
    for rule in (
        lambda t, _n: t.id == text,
        lambda t, _n: t.id.startswith(text),
        lambda _t, n: n == text,
    ):
        found = [t for t, n in candidates if rule(t, n)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            listed = ", ".join(f"{t.kind} {short_id(t.id)}" for t in found)
            raise InvalidArgument(f"{text!r} is ambiguous: {listed}")
    raise NotFound(f"no {' or '.join(kinds)} matches {text!r}")


#: The pod annotation that names the container ``kubectl exec POD`` picks in a pod of several.
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def resolve_container(c: Client, text: str) -> str:
    """The id of the container ``text`` names or, failing that, of the running container of
    the pod it names (``exec POD``, as kubectl takes a pod). A pod with several running
    containers needs one named: its ``kubectl.kubernetes.io/default-container`` annotation,
    as kubectl reads it, or the caller names the container."""
    try:
        return resolve(c, text, kinds=("container",)).id
    except NotFound:
        pass
    try:
        pod_id = resolve(c, text, kinds=("pod",)).id
    except NotFound:
        raise NotFound(f"no container or pod matches {text!r}") from None
    running = c.list_containers(pod_id=pod_id, state=pb.CONTAINER_RUNNING)
    if len(running) == 1:
        return str(running[0].id)
    if not running:
        raise FailedPrecondition(f"pod {short_id(pod_id)} ({text}) has no running container")
    pods = [p for p in c.list_pods() if p.id == pod_id]
    default = pods[0].annotations.get(DEFAULT_CONTAINER_ANNOTATION, "") if pods else ""
    for x in running:
        if default and x.metadata.name == default:
            return str(x.id)
    names = ", ".join(sorted(x.metadata.name for x in running))
    raise InvalidArgument(
        f"pod {text!r} has {len(running)} running containers ({names}): name the container"
    )


# -- pods, ps, inspect -------------------------------------------------------------------
def cmd_pods(c: Client, args: argparse.Namespace) -> int:
    items = [
        p
        for p in c.list_pods(labels=parse_labels(args.label))
        if (not args.name or re.search(args.name, p.metadata.name))
        and (not args.namespace or p.metadata.namespace == args.namespace)
        and (args.all or args.state is None or _POD_STATES.get(p.state) == args.state)
    ]
    items.sort(key=lambda p: p.created_at, reverse=True)
    wide = args.output == "wide"
    if structured(args.output):
        print(dump({"items": [message_to_dict(p) for p in items]}, args.output))
    elif args.quiet:
        for p in items:
            print(p.id)
    else:
        rows = [
            [
                p.id if wide else short_id(p.id),
                _age(p.created_at),
                _POD_STATES.get(p.state, "Unknown"),
                p.metadata.name,
                p.metadata.namespace,
                str(p.metadata.attempt),
                p.runtime_handler or "(default)",
            ]
            for p in items
        ]
        headers = ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]
        print(table(headers, rows))
    return 0


def cmd_ps(c: Client, args: argparse.Namespace) -> int:
    pod_id = resolve(c, args.pod, kinds=("pod",)).id if args.pod else ""
    containers = c.list_containers(
        pod_id=pod_id,
        labels=parse_labels(args.label),
        state=None if args.all else pb.CONTAINER_RUNNING,
    )
    containers = [x for x in containers if not args.name or re.search(args.name, x.metadata.name)]
    containers.sort(key=lambda x: x.created_at, reverse=True)
    if structured(args.output):
        print(dump({"containers": [message_to_dict(x) for x in containers]}, args.output))
        return 0
    if args.quiet:
        for x in containers:
            print(x.id)
        return 0
    pods = {p.id: p.metadata.name for p in c.list_pods()}
    names = _ImageNames(c)
    ident = (lambda i: i) if args.output == "wide" else short_id
    rows = [
        [
            ident(x.id),
            names.of(x.image.image or x.image_ref),
            _age(x.created_at),
            _CONTAINER_STATES.get(x.state, "Unknown"),
            x.metadata.name,
            str(x.metadata.attempt),
            ident(x.pod_sandbox_id),
            pods.get(x.pod_sandbox_id, ""),
        ]
        for x in containers
    ]
    headers = ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]
    print(table(headers, rows))
    return 0


class _ImageNames:
    """An image's first tag for display when a container names its image by id."""

    def __init__(self, c: Client) -> None:
        self._c = c
        self._cache: dict[str, str] = {}

    def of(self, image: str) -> str:
        if not image.startswith("sha256:"):
            return image
        if image not in self._cache:
            found = self._c.find_image(image)
            tags = list(found.repo_tags) if found is not None else []
            self._cache[image] = tags[0] if tags else short_id(image)
        return self._cache[image]


def _info(info: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in info.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _inspect_row(kind: str, status: Any, *, wide: bool) -> list[str]:
    if kind == "pod":
        state = _POD_STATES.get(status.state, "Unknown")
        ips = [status.network.ip] if status.network.ip else []
        ips += [x.ip for x in status.network.additional_ips]
    else:
        state = _CONTAINER_STATES.get(status.state, "Unknown")
        ips = []
        if status.state == pb.CONTAINER_EXITED:
            state += f" ({status.exit_code}{', ' + status.reason if status.reason else ''})"
    return [
        kind,
        status.id if wide else short_id(status.id),
        status.metadata.name,
        state,
        _age(status.created_at),
        ", ".join(ips),
    ]


def cmd_inspect(c: Client, args: argparse.Namespace) -> int:
    out = []
    rows = []
    for text in args.ids:
        target = resolve(c, text)
        reply: Any
        if target.kind == "pod":
            reply = c.pod_status(target.id, verbose=True)
        else:
            reply = c.container_status(target.id, verbose=True)
        out.append({"status": message_to_dict(reply.status), "info": _info(reply.info)})
        rows.append(_inspect_row(target.kind, reply.status, wide=args.output == "wide"))
    if structured(args.output):
        print(dump(out[0] if len(out) == 1 else out, args.output))
    else:
        print(table(["KIND", "ID", "NAME", "STATE", "CREATED", "IP"], rows))
    return 0


# -- logs --------------------------------------------------------------------------------
class _Writer:
    """Writes log lines to stdout or stderr by their stream, raw bytes where possible."""

    def __init__(self, *, timestamps: bool) -> None:
        self._timestamps = timestamps

    def write(self, lines: Sequence[LogLine]) -> None:
        for line in lines:
            target = sys.stderr if line.stream == "stderr" else sys.stdout
            data = (line.timestamp.encode() + b" " if self._timestamps else b"") + line.content
            _write_raw(target, data)


def _write_raw(target: IO[str], data: bytes) -> None:
    buffer: BinaryIO | None = getattr(target, "buffer", None)
    target.flush()
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        target.write(data.decode(errors="replace"))
        target.flush()


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _running(c: Client, container_id: str) -> bool:
    try:
        status = c.container_status(container_id).status
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return status.state in (pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING)


def _refuse_a_pod_for_a_container(c: Client, text: str) -> None:
    """Where only a container will do (``logs``) and ``text`` names a pod, say so and name
    its containers: the mistake a newcomer makes after ``pinnace play`` (the example pod and
    its container are named apart)."""
    pods = [p for p in c.list_pods() if text in (p.id, p.metadata.name) or p.id.startswith(text)]
    if len(pods) != 1:
        return
    names = sorted(x.metadata.name for x in c.list_containers(pod_id=pods[0].id))
    which = f"its containers: {', '.join(names)}" if names else "it has no containers"
    raise NotFound(f"{text!r} is a pod, not a container; {which}")


def cmd_logs(c: Client, args: argparse.Namespace) -> int:
    try:
        target = resolve(c, args.container, kinds=("container",))
    except NotFound:
        _refuse_a_pod_for_a_container(c, args.container)
        raise
    path = c.container_status(target.id).status.log_path
    if not path:
        raise FailedPrecondition(f"container {short_id(target.id)} has no log file")
    writer = _Writer(timestamps=args.timestamps)
    assembler = LogAssembler()
    try:
        log: BinaryIO = open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"log file {path} does not exist (yet)") from None
    try:
        first = assembler.feed(log.read())
        if args.tail is not None and args.tail >= 0:
            first = list(deque(first, maxlen=args.tail)) if args.tail else []
        writer.write(first)
        if args.follow:
            with c.container_events() as events:
                if _running(c, target.id):
                    log = _follow(events, target.id, path, log, assembler, writer)
        writer.write(assembler.feed(log.read()))
        writer.write(assembler.flush())
    finally:
        log.close()
    return 0


def _follow(
    events: ContainerEvents,
    container_id: str,
    path: str,
    log: BinaryIO,
    assembler: LogAssembler,
    writer: _Writer,
) -> BinaryIO:
    """Print what is appended to the log until the container's stop event; follow a rotation
    (the file renamed and a new one opened at ``path``) by draining the old file, then
    reopening. Returns the file open at the end (the caller drains it)."""
    inode = os.fstat(log.fileno()).st_ino
    while True:
        data = log.read()
        if data:
            writer.write(assembler.feed(data))
            continue
        current = _inode(path)
        if current is not None and current != inode:
            with contextlib.suppress(FileNotFoundError):
                reopened = open(path, "rb")
                writer.write(assembler.feed(log.read()))
                log.close()
                log, inode = reopened, os.fstat(reopened.fileno()).st_ino
                continue
        # The wait for the exit fact doubles as the tick for reading the file again (a local
        # file followed like tail -f, without inotify).
        if events.wait_for(container_id, pb.CONTAINER_STOPPED_EVENT, timeout=FOLLOW_INTERVAL):
            return log


# -- exec, stop, rm ----------------------------------------------------------------------
def cmd_exec(c: Client, args: argparse.Namespace) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise InvalidArgument("exec needs a command after the container: exec CONTAINER -- CMD")
    reply = c.exec_sync(resolve_container(c, args.container), command, timeout=args.exec_timeout)
    _write_raw(sys.stdout, reply.stdout)
    _write_raw(sys.stderr, reply.stderr)
    return int(reply.exit_code)


def stop_pod(c: Client, pod_id: str) -> None:
    """Stop a pod as kubelet does: each running container with the pod's grace period
    (``io.kubernetes.pod.terminationGracePeriod``, default 30 s), then the sandbox."""
    status = c.pod_status(pod_id).status
    grace = int(status.annotations.get(manifest.GRACE_PERIOD_ANNOTATION, "30") or 30)
    for ctr in c.list_containers(pod_id=pod_id, state=pb.CONTAINER_RUNNING):
        c.stop_container(ctr.id, grace=grace)
    c.stop_pod(pod_id)


def remove_pod(c: Client, pod_id: str) -> pb.PodSandboxStatus:
    """Stop and remove a pod; returns its last status (for the host directories a client
    made for it, which are that client's to remove)."""
    status = c.pod_status(pod_id).status
    stop_pod(c, pod_id)
    c.remove_pod(pod_id)
    return status


def cmd_stop(c: Client, args: argparse.Namespace) -> int:
    for text in args.ids:
        target = resolve(c, text)
        if target.kind == "pod":
            stop_pod(c, target.id)
        else:
            c.stop_container(target.id, grace=args.time)
        print(target.id)
    return 0


def cmd_rm(c: Client, args: argparse.Namespace) -> int:
    for text in args.ids:
        target = resolve(c, text)
        if target.kind == "pod":
            status = c.pod_status(target.id).status
            if status.state == pb.SANDBOX_READY and not args.force:
                raise FailedPrecondition(
                    f"pod {short_id(target.id)} is ready; stop it first or use --force"
                )
            playdirs.remove(remove_pod(c, target.id), playdirs.PlayRoots.from_env())
        else:
            if _running(c, target.id):
                if not args.force:
                    raise FailedPrecondition(
                        f"container {short_id(target.id)} is running; stop it or use --force"
                    )
                c.stop_container(target.id, grace=0)
            c.remove_container(target.id)
        print(target.id)
    return 0


# -- argument parsing --------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    """Add ``pods``, ``ps``, ``inspect``, ``logs``, ``exec``, ``stop`` and ``rm`` to the
    ``pinnace`` command's subparsers."""
    p = sub.add_parser("pods", help="list pods (every state, as crictl pods)")
    add_output_option(p)
    p.add_argument("--all", "-a", action="store_true", help="every state (the default)")
    p.add_argument("--state", choices=["Ready", "NotReady"], help="only pods in this state")
    p.add_argument("--name", help="only pods whose name matches this regular expression")
    p.add_argument("--namespace", "-n", help="only pods in this namespace")
    p.add_argument("--label", "-l", action="append", help="only pods with label k=v (repeat)")
    p.add_argument("--quiet", "-q", action="store_true", help="only ids")
    p.set_defaults(func=cmd_pods)

    p = sub.add_parser("ps", help="list containers (running ones unless -a)")
    add_output_option(p)
    p.add_argument("--all", "-a", action="store_true", help="containers in every state")
    p.add_argument("--pod", "-p", help="only containers of this pod (id prefix or name)")
    p.add_argument("--name", help="only containers whose name matches this regular expression")
    p.add_argument("--label", "-l", action="append", help="only containers with label k=v")
    p.add_argument("--quiet", "-q", action="store_true", help="only ids")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("inspect", help="a pod's or container's verbose status (JSON by default)")
    add_output_option(p)
    p.set_defaults(output="json")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("logs", help="print a container's log")
    p.add_argument("container")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until it exits")
    p.add_argument("--tail", type=int, help="only the last N lines (-1: all)")
    p.add_argument("--timestamps", "-t", action="store_true", help="prefix each line's time")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("exec", help="run a command in a container and wait for it")
    # not dest "timeout": that is pinnace's own --timeout, which a subparser default would hide
    p.add_argument(
        "--timeout",
        dest="exec_timeout",
        type=int,
        default=0,
        help="seconds before the command is killed (0: none)",
    )
    p.add_argument("container", metavar="CONTAINER|POD")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("stop", help="stop pods or containers")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--time", "-t", type=int, default=10, help="seconds of grace for a container")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("rm", help="remove pods or containers")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--force", "-f", action="store_true", help="stop them first if need be")
    p.set_defaults(func=cmd_rm)
