"""``pinnace events``: follow the daemon's events live until Ctrl-C.

Each event is one line: ``TIMESTAMP  NAMESPACE  TOPIC  key=value ...`` for people, where nested
fields flatten to dotted keys (``dns.servers=10.0.0.10``, ``ips.0.address=10.1.0.2/24``) and
empty fields are left out; or, with ``-o json``, one JSON object per line (``{"timestamp",
"namespace", "topic", "event"}``) for scripts. Lines are flushed as they come, so a pipe sees
each event at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC
from typing import IO, Any

from cri.api.pinnace.events.v1 import events_pb2 as epb
from cri.cli.client import Client

_FILTER_HELP = (
    "containerd-style filter, e.g. 'topic~=\"^/tasks/\"' or "
    "'topic==/network/attached,event.sandbox_id==abc'; repeat for alternatives (OR)"
)


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if text == "" or any(ch.isspace() or ch in "\"'" for ch in text):
        return json.dumps(text)
    return text


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``key=value`` pairs of an event's fields in field order. Objects flatten to dotted keys,
    lists of objects to indexed ones (``ips.0.address``), lists of strings join with commas;
    absent values (empty, null, [], {}) are left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if value is None or value == "" or value == [] or value == {}:
            continue
        if isinstance(value, dict):
            pairs.extend(flatten(value, f"{name}."))
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            pairs.append((name, _value(",".join(value))))
        elif isinstance(value, list):
            pairs.extend(flatten({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            pairs.append((name, _value(value)))
    return pairs


def _timestamp(envelope: epb.Envelope) -> str:
    return envelope.timestamp.ToDatetime(tzinfo=UTC).isoformat(timespec="microseconds")


def _event(envelope: epb.Envelope) -> Any:
    try:
        return json.loads(envelope.event_json) if envelope.event_json else {}
    except json.JSONDecodeError:
        return envelope.event_json  # show what came rather than fail the stream


def render_line(envelope: epb.Envelope) -> str:
    """The human line for one envelope."""
    event = _event(envelope)
    fields = (
        " ".join(f"{k}={v}" for k, v in flatten(event))
        if isinstance(event, dict)
        else _value(event)
    )
    return f"{_timestamp(envelope)}  {envelope.namespace}  {envelope.topic}  {fields}".rstrip()


def render_json(envelope: epb.Envelope) -> str:
    """The JSON line for one envelope."""
    return json.dumps(
        {
            "timestamp": _timestamp(envelope),
            "namespace": envelope.namespace,
            "topic": envelope.topic,
            "event": _event(envelope),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def follow(
    c: Client, filters: list[str], *, json_lines: bool, out: IO[str], err: IO[str] | None = None
) -> int:
    """Print envelopes as they arrive until the daemon ends the stream (0, and a line on
    ``err`` saying so: the prompt coming back unasked needs a reason) or Ctrl-C (the stream
    cancelled, the interrupt raised on for :func:`cri.cli.main.main` to end with 130).
    gRPC errors (a bad filter, being dropped as too slow) propagate as ``grpc.RpcError``."""
    call = c.subscribe(filters)
    render = render_json if json_lines else render_line
    try:
        for envelope in call:
            out.write(render(envelope) + "\n")
            out.flush()
    except KeyboardInterrupt:
        call.cancel()
        raise
    print(
        "pinnace: pinnaced ended the event stream (it stopped or is restarting)",
        file=err if err is not None else sys.stderr,
    )
    return 0


def cmd_events(c: Client, args: argparse.Namespace) -> int:
    """Entry point for ``pinnace events``."""
    return follow(c, list(args.filters), json_lines=args.output == "json", out=sys.stdout)


def add_parsers(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``events`` to the ``pinnace`` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "events", help="follow the daemon's events live (Ctrl-C to stop)"
    )
    parser.add_argument(
        "--filter", "-f", dest="filters", action="append", default=[], help=_FILTER_HELP
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.set_defaults(func=cmd_events)
    return parser
