"""``pinnace version`` and ``pinnace info``: what pinnaced is and what it reports."""

from __future__ import annotations

import argparse
from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli.client import Client
from cri.cli.render import add_output_option, dump, structured, table


def cmd_version(c: Client, args: argparse.Namespace) -> int:
    v = c.version()
    data = {
        "runtimeName": v.runtime_name,
        "runtimeVersion": v.runtime_version,
        "runtimeApiVersion": v.runtime_api_version,
        "version": v.version,
    }
    if structured(args.output):
        print(dump(data, args.output))
    else:
        for key, value in data.items():
            print(f"{key}: {value}")
    return 0


def info_data(c: Client) -> dict[str, Any]:
    status = c.status(verbose=True)
    config = c.runtime_config()
    return {
        "conditions": [
            {"type": x.type, "status": x.status, "reason": x.reason, "message": x.message}
            for x in status.status.conditions
        ],
        "runtimeHandlers": [
            {
                "name": h.name,
                "recursiveReadOnlyMounts": h.features.recursive_read_only_mounts,
                "userNamespaces": h.features.user_namespaces,
            }
            for h in status.runtime_handlers
        ],
        "cgroupDriver": pb.CgroupDriver.Name(config.linux.cgroup_driver).lower(),
        "info": dict(status.info),
    }


def cmd_info(c: Client, args: argparse.Namespace) -> int:
    data = info_data(c)
    if structured(args.output):
        print(dump(data, args.output))
        return 0
    rows = [
        [x["type"], str(x["status"]).lower(), x["reason"], x["message"]] for x in data["conditions"]
    ]
    print(table(["CONDITION", "STATUS", "REASON", "MESSAGE"], rows))
    print()
    rows = [
        [
            h["name"] or "(default)",
            str(h["recursiveReadOnlyMounts"]).lower(),
            str(h["userNamespaces"]).lower(),
        ]
        for h in data["runtimeHandlers"]
    ]
    print(table(["HANDLER", "RRO MOUNTS", "USER NAMESPACES"], rows))
    print(f"\ncgroup driver: {data['cgroupDriver']}")
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``version`` and ``info``."""
    p = sub.add_parser("version", help="versions of pinnaced and the CRI")
    add_output_option(p)
    p.set_defaults(func=cmd_version)
    p = sub.add_parser("info", help="runtime conditions, handlers, cgroups")
    add_output_option(p)
    p.set_defaults(func=cmd_info)
