"""``pinnace``: images, runtime information (and, as they land, pods, logs, exec, events).

Every command talks to pinnaced through its socket: the CRI for what the CRI covers, pinnace's
own Images API for progress, push and import. ``-o json`` gives scripts stable JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc

from cri.api.pinnace.images.v1 import images_pb2 as ipb
from cri.api.pinnace.images.v1 import images_pb2_grpc as ipb_grpc
from cri.api.runtime.v1 import api_pb2 as pb
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc
from cri.cli import events as events_cli
from cri.cli import extensions as extensions_cli
from cri.cli import play as play_cli
from cri.cli import pods as pods_cli
from cri.cli.render import ProgressView, human_size, short_id, table, to_json

DEFAULT_ADDRESS = "unix:///run/pinnace/pinnace.sock"


class Client:
    """Stubs over one channel to pinnaced."""

    def __init__(self, address: str, timeout: float) -> None:
        if address.startswith("/"):
            address = f"unix://{address}"
        self.address = address
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address)
        self.runtime = pb_grpc.RuntimeServiceStub(self.channel)
        self.image = pb_grpc.ImageServiceStub(self.channel)
        self.images = ipb_grpc.ImagesStub(self.channel)


def _credentials(user: str | None) -> ipb.Credentials:
    if not user:
        return ipb.Credentials()
    username, _, password = user.partition(":")
    return ipb.Credentials(username=username, password=password)


def cmd_version(c: Client, args: argparse.Namespace) -> int:
    v = c.runtime.Version(pb.VersionRequest(), timeout=c.timeout)
    data = {
        "runtimeName": v.runtime_name,
        "runtimeVersion": v.runtime_version,
        "runtimeApiVersion": v.runtime_api_version,
        "version": v.version,
    }
    if args.output == "json":
        print(to_json(data))
    else:
        for key, value in data.items():
            print(f"{key}: {value}")
    return 0


def cmd_info(c: Client, args: argparse.Namespace) -> int:
    status = c.runtime.Status(pb.StatusRequest(verbose=True), timeout=c.timeout)
    config = c.runtime.RuntimeConfig(pb.RuntimeConfigRequest(), timeout=c.timeout)
    conditions = [
        {"type": x.type, "status": x.status, "reason": x.reason, "message": x.message}
        for x in status.status.conditions
    ]
    handlers = [
        {
            "name": h.name,
            "recursiveReadOnlyMounts": h.features.recursive_read_only_mounts,
            "userNamespaces": h.features.user_namespaces,
        }
        for h in status.runtime_handlers
    ]
    driver = pb.CgroupDriver.Name(config.linux.cgroup_driver).lower()
    if args.output == "json":
        print(
            to_json(
                {
                    "conditions": conditions,
                    "runtimeHandlers": handlers,
                    "cgroupDriver": driver,
                    "info": dict(status.info),
                }
            )
        )
        return 0
    print(
        table(
            ["CONDITION", "STATUS", "REASON", "MESSAGE"],
            [[x["type"], str(x["status"]).lower(), x["reason"], x["message"]] for x in conditions],
        )
    )
    print()
    print(
        table(
            ["HANDLER", "RRO MOUNTS", "USER NAMESPACES"],
            [
                [
                    h["name"] or "(default)",
                    str(h["recursiveReadOnlyMounts"]).lower(),
                    str(h["userNamespaces"]).lower(),
                ]
                for h in handlers
            ],
        )
    )
    print(f"\ncgroup driver: {driver}")
    return 0


def _follow(stream: Any, args: argparse.Namespace) -> ipb.Progress | None:
    view = ProgressView(sys.stderr, tty=sys.stderr.isatty() and not args.quiet)
    last = None
    for message in stream:
        last = message
        if not args.quiet:
            view.update(
                digest=message.digest,
                phase=message.phase,
                offset=message.offset,
                total=message.total,
            )
    return last


def cmd_pull(c: Client, args: argparse.Namespace) -> int:
    stream = c.images.Pull(ipb.PullRequest(image=args.image, credentials=_credentials(args.user)))
    last = _follow(stream, args)
    image_id = last.image_id if last is not None else ""
    if args.output == "json":
        print(to_json({"image": args.image, "id": image_id}))
    else:
        print(image_id)
    return 0


def cmd_push(c: Client, args: argparse.Namespace) -> int:
    stream = c.images.Push(
        ipb.PushRequest(
            image=args.image, target=args.target or "", credentials=_credentials(args.user)
        )
    )
    last = _follow(stream, args)
    digest = last.digest if last is not None else ""
    if args.output == "json":
        print(to_json({"image": args.image, "target": args.target or args.image, "digest": digest}))
    else:
        print(digest)
    return 0


def cmd_import(c: Client, args: argparse.Namespace) -> int:
    path = os.path.abspath(args.path)
    reply = c.images.Import(ipb.ImportRequest(path=path, name=args.name or ""))
    if args.output == "json":
        print(to_json([{"id": i.id, "names": list(i.names)} for i in reply.images]))
    else:
        for i in reply.images:
            print(f"{i.id}  {' '.join(i.names)}".rstrip())
    return 0


def _image_json(image: pb.Image) -> dict[str, Any]:
    return {
        "id": image.id,
        "repoTags": list(image.repo_tags),
        "repoDigests": list(image.repo_digests),
        "size": image.size,
        "uid": image.uid.value if image.HasField("uid") else None,
        "username": image.username,
        "pinned": image.pinned,
    }


def cmd_ls(c: Client, args: argparse.Namespace) -> int:
    reply = c.image.ListImages(pb.ListImagesRequest(), timeout=c.timeout)
    images = sorted(reply.images, key=lambda i: (list(i.repo_tags) or [i.id])[0])
    if args.output == "json":
        print(to_json([_image_json(i) for i in images]))
        return 0
    if args.quiet:
        for i in images:
            print(i.id)
        return 0
    rows = []
    for i in images:
        for tag in list(i.repo_tags) or ["<none>:<none>"]:
            name, _, version = tag.rpartition(":")
            rows.append(
                [name, version, short_id(i.id), human_size(i.size), "yes" if i.pinned else ""]
            )
    print(table(["IMAGE", "TAG", "IMAGE ID", "SIZE", "PINNED"], rows))
    return 0


def cmd_inspect(c: Client, args: argparse.Namespace) -> int:
    failures = 0
    out = []
    for name in args.images:
        reply = c.image.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=name), verbose=True),
            timeout=c.timeout,
        )
        if not reply.HasField("image"):
            print(f"pinnace: image {name!r} not found", file=sys.stderr)
            failures += 1
            continue
        import json

        data = _image_json(reply.image)
        if "info" in reply.info:
            data["info"] = json.loads(reply.info["info"])
        out.append(data)
    print(to_json(out if len(args.images) > 1 else (out[0] if out else {})))
    return 1 if failures else 0


def cmd_rm(c: Client, args: argparse.Namespace) -> int:
    failures = 0
    for name in args.images:
        reply = c.image.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=name)), timeout=c.timeout
        )
        if not reply.HasField("image"):
            print(f"pinnace: image {name!r} not found", file=sys.stderr)
            failures += 1
            continue
        c.image.RemoveImage(
            pb.RemoveImageRequest(image=pb.ImageSpec(image=reply.image.id)), timeout=c.timeout
        )
        print(f"removed {reply.image.id}")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinnace", description="talk to pinnaced")
    parser.add_argument(
        "--address",
        "-a",
        default=os.environ.get("PINNACE_ADDRESS", DEFAULT_ADDRESS),
        help=f"pinnaced's socket (env PINNACE_ADDRESS; default {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for answers to quick calls"
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-o", "--output", choices=["table", "json"], default="table")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("version", parents=[output], help="versions of pinnaced and the CRI")
    p.set_defaults(func=cmd_version)
    p = sub.add_parser("info", parents=[output], help="runtime conditions, handlers, cgroups")
    p.set_defaults(func=cmd_info)

    events_cli.add_parser(sub)
    pods_cli.add_parsers(sub)  # pods, ps, inspect, logs, exec, stop, rm
    play_cli.add_parsers(sub)  # play
    extensions_cli.add_parsers(sub)  # cdi ls, nri ls

    image = sub.add_parser("image", aliases=["images"], help="manage images")
    isub = image.add_subparsers(dest="image_command", required=True)
    p = isub.add_parser("pull", parents=[output], help="pull an image from a registry")
    p.add_argument("image")
    p.add_argument("--user", "-u", help="registry credentials as user:password")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_pull)
    p = isub.add_parser("push", parents=[output], help="push a local image to a registry")
    p.add_argument("image")
    p.add_argument("target", nargs="?", help="destination reference (default: the image's name)")
    p.add_argument("--user", "-u", help="registry credentials as user:password")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_push)
    p = isub.add_parser(
        "import", parents=[output], help="import an OCI image layout directory or archive"
    )
    p.add_argument("path")
    p.add_argument("--name", help="name for images the archive does not name")
    p.set_defaults(func=cmd_import)
    p = isub.add_parser("ls", aliases=["list"], parents=[output], help="list images")
    p.add_argument("--quiet", "-q", action="store_true", help="only ids")
    p.set_defaults(func=cmd_ls)
    p = isub.add_parser("inspect", parents=[output], help="show an image's details as JSON")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_inspect)
    p = isub.add_parser("rm", aliases=["remove"], parents=[output], help="remove images")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_rm)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    client = Client(args.address, args.timeout)
    try:
        return int(args.func(client, args))
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code == grpc.StatusCode.UNAVAILABLE and "connect" in (details or "").lower():
            print(f"pinnace: cannot reach pinnaced at {client.address}: {details}", file=sys.stderr)
        else:
            name = code.name if code is not None else "ERROR"
            print(f"pinnace: {name}: {details}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        client.channel.close()


if __name__ == "__main__":
    sys.exit(main())
