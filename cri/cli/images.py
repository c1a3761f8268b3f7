"""``pinnace image pull|push|import|ls|inspect|rm`` and ``pinnace images`` (``image ls``).

Pulls and pushes go through pinnace's Images API for progress; listing, inspecting and removing
through the CRI ImageService. ``image rm NAME`` of one tag of an image that has others removes
only that tag (``podman rmi`` does the same); ``--all`` removes the image with every name, as
does naming it by id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from cri.api.pinnace.images.v1 import images_pb2 as ipb
from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli.client import Client
from cri.cli.render import (
    ProgressView,
    add_output_option,
    dump,
    human_size,
    short_id,
    structured,
    table,
)
from runtime.errors import NotFound


def _credentials(user: str | None) -> ipb.Credentials:
    if not user:
        return ipb.Credentials()
    username, _, password = user.partition(":")
    return ipb.Credentials(username=username, password=password)


def follow_progress(stream: Iterator[ipb.Progress], *, quiet: bool) -> ipb.Progress | None:
    """Show a transfer's progress on stderr; returns its last message."""
    view = ProgressView(sys.stderr, tty=sys.stderr.isatty() and not quiet)
    last = None
    for message in stream:
        last = message
        if not quiet:
            view.update(
                digest=message.digest,
                phase=message.phase,
                offset=message.offset,
                total=message.total,
            )
    return last


def cmd_pull(c: Client, args: argparse.Namespace) -> int:
    last = follow_progress(
        c.pull(args.image, credentials=_credentials(args.user)), quiet=args.quiet
    )
    image_id = last.image_id if last is not None else ""
    if structured(args.output):
        print(dump({"image": args.image, "id": image_id}, args.output))
    else:
        print(image_id)
    return 0


def cmd_push(c: Client, args: argparse.Namespace) -> int:
    stream = c.push(args.image, target=args.target or "", credentials=_credentials(args.user))
    last = follow_progress(stream, quiet=args.quiet)
    digest = last.digest if last is not None else ""
    if structured(args.output):
        data = {"image": args.image, "target": args.target or args.image, "digest": digest}
        print(dump(data, args.output))
    else:
        print(digest)
    return 0


def cmd_import(c: Client, args: argparse.Namespace) -> int:
    imported = c.import_images(os.path.abspath(args.path), name=args.name or "")
    if structured(args.output):
        print(dump([{"id": i.id, "names": list(i.names)} for i in imported], args.output))
    else:
        for i in imported:
            print(f"{i.id}  {' '.join(i.names)}".rstrip())
    return 0


def image_json(image: pb.Image) -> dict[str, Any]:
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
    images = sorted(c.list_images(), key=lambda i: (list(i.repo_tags) or [i.id])[0])
    if structured(args.output):
        print(dump([image_json(i) for i in images], args.output))
        return 0
    if args.quiet:
        for i in images:
            print(i.id)
        return 0
    wide = args.output == "wide"
    rows = []
    for i in images:
        for tag in list(i.repo_tags) or ["<none>:<none>"]:
            name, _, version = tag.rpartition(":")
            row = [name, version, i.id if wide else short_id(i.id), human_size(i.size)]
            if wide:
                row.append(", ".join(i.repo_digests))
            rows.append([*row, "yes" if i.pinned else ""])
    headers = ["IMAGE", "TAG", "IMAGE ID", "SIZE", *(["DIGESTS"] if wide else []), "PINNED"]
    print(table(headers, rows))
    return 0


def cmd_inspect(c: Client, args: argparse.Namespace) -> int:
    failures = 0
    out = []
    for name in args.images:
        reply = c.image_status(name, verbose=True)
        if not reply.HasField("image"):
            print(f"pinnace: not found: no image {name}", file=sys.stderr)
            failures += 1
            continue
        data = image_json(reply.image)
        if "info" in reply.info:
            data["info"] = json.loads(reply.info["info"])
        out.append(data)
    if not out:
        return 1
    if structured(args.output):
        print(dump(out if len(args.images) > 1 else out[0], args.output))
    else:
        rows = [
            [
                i["id"] if args.output == "wide" else short_id(i["id"]),
                ", ".join(i["repoTags"]) or "<none>",
                human_size(i["size"]),
                i["username"] or (str(i["uid"]) if i["uid"] is not None else ""),
            ]
            for i in out
        ]
        print(table(["IMAGE ID", "TAGS", "SIZE", "USER"], rows))
    return 1 if failures else 0


def _names_id(image: pb.Image, text: str) -> bool:
    """Whether ``text`` names ``image`` by its id (full, bare hex, or a prefix)."""
    hex_id = image.id.removeprefix("sha256:")
    return text == image.id or hex_id.startswith(text.removeprefix("sha256:"))


def cmd_rm(c: Client, args: argparse.Namespace) -> int:
    failures = 0
    for name in args.images:
        image = c.find_image(name)
        if image is None:
            print(f"pinnace: not found: no image {name}", file=sys.stderr)
            failures += 1
            continue
        if not args.all and len(image.repo_tags) > 1 and not _names_id(image, name):
            try:
                left = c.untag(name)
            except NotFound:
                raise
            print(f"untagged {name} (image {short_id(left.id)} keeps {', '.join(left.names)})")
            continue
        c.remove_image(image.id)
        print(f"removed {image.id}")
    return 1 if failures else 0


def add_parsers(sub: Any) -> None:
    """Add ``image`` (pull, push, import, ls, inspect, rm) and ``images``."""
    image = sub.add_parser("image", help="manage images")
    isub = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    p = isub.add_parser("pull", help="pull an image from a registry")
    add_output_option(p)
    p.add_argument("image")
    p.add_argument("--user", "-u", help="registry credentials as user:password")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_pull)
    p = isub.add_parser("push", help="push a local image to a registry")
    add_output_option(p)
    p.add_argument("image")
    p.add_argument("target", nargs="?", help="destination reference (default: the image's name)")
    p.add_argument("--user", "-u", help="registry credentials as user:password")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_push)
    p = isub.add_parser("import", help="import an OCI image layout directory or archive")
    add_output_option(p)
    p.add_argument("path")
    p.add_argument("--name", help="name for images the archive does not name")
    p.set_defaults(func=cmd_import)
    for parent, names in ((isub, ("ls", "list")), (sub, ("images",))):
        p = parent.add_parser(names[0], aliases=list(names[1:]), help="list images")
        add_output_option(p)
        p.add_argument("--quiet", "-q", action="store_true", help="only ids")
        p.set_defaults(func=cmd_ls)
    p = isub.add_parser("inspect", help="show images' details")
    add_output_option(p)
    p.set_defaults(output="json")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_inspect)
    p = isub.add_parser(
        "rm", aliases=["remove"], help="remove images (one tag of several: untag it)"
    )
    p.add_argument("images", nargs="+")
    p.add_argument("--all", "-a", action="store_true", help="remove the image with all its names")
    p.set_defaults(func=cmd_rm)
