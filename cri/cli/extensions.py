"""``pinnace cdi ls`` and ``pinnace nri ls``: the node's CDI devices and NRI plugins.

Both read pinnaced's verbose Status (``info["cdi"]`` and ``info["nri"]``, JSON), so they show
what the daemon itself resolves against, not a second reading of the files.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cri.cli.client import Client
from cri.cli.render import add_output_option, dump, structured, table


def _info(c: Client, key: str) -> dict[str, Any] | None:
    raw = c.status(verbose=True).info.get(key)
    return json.loads(raw) if raw else None


def cmd_cdi_ls(c: Client, args: argparse.Namespace) -> int:
    info = _info(c, "cdi")
    if info is None:
        print("pinnace: pinnaced reports no CDI registry")
        return 1
    if structured(args.output):
        print(dump(info, args.output))
        return 0
    rows = [[d["name"], d["source"], d["conflict"] or "-"] for d in info["devices"]]
    print(table(["DEVICE", "SPEC FILE", "CONFLICT"], rows))
    for path, why in sorted(info["errors"].items()):
        print(f"skipped {path}: {why}")
    return 0


def cmd_nri_ls(c: Client, args: argparse.Namespace) -> int:
    info = _info(c, "nri")
    if info is None:
        print("pinnace: NRI is disabled in pinnaced")
        return 1
    if structured(args.output):
        print(dump(info, args.output))
        return 0
    rows = [
        [
            p["index"],
            p["name"],
            ",".join(p["events"]) or "-",
            str(p["calls"]),
            str(p["failures"]),
        ]
        for p in info["plugins"]
    ]
    print(table(["INDEX", "PLUGIN", "EVENTS", "CALLS", "FAILURES"], rows))
    print(f"\nsocket: {info.get('socket') or '(none)'}")
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``cdi`` and ``nri`` on the CLI's subcommands."""
    output = argparse.ArgumentParser(add_help=False)
    add_output_option(output, formats=("table", "json", "yaml"))
    cdi = sub.add_parser("cdi", help="Container Device Interface devices")
    csub = cdi.add_subparsers(dest="cdi_command", required=True, metavar="COMMAND")
    p = csub.add_parser("ls", aliases=["list"], parents=[output], help="list CDI devices")
    p.set_defaults(func=cmd_cdi_ls)
    nri = sub.add_parser("nri", help="Node Resource Interface plugins")
    nsub = nri.add_subparsers(dest="nri_command", required=True, metavar="COMMAND")
    p = nsub.add_parser("ls", aliases=["list"], parents=[output], help="list NRI plugins")
    p.set_defaults(func=cmd_nri_ls)
