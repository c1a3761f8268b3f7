"""A CNI config rendered from a template once kubelet tells the pod CIDR
(``UpdateRuntimeConfig``), as containerd's ``conf_template`` does.

Placeholders (a subset of containerd's Go template, enough for bridge + host-local):
``{{.PodCIDR}}`` the first CIDR, ``{{.PodCIDRRanges}}`` all of them as JSON host-local ranges
(``[{"subnet": "…"}], …``).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

from runtime.errors import InvalidArgument

RENDERED_NAME = "10-pinnace-template.conflist"


def parse_cidrs(text: str) -> list[str]:
    """The CIDRs of ``pod_cidr`` (comma-separated for dual stack), normalised."""
    cidrs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            cidrs.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise InvalidArgument(
                f"pod CIDR {part!r} is not a network like 10.244.1.0/24"
            ) from None
    if not cidrs:
        raise InvalidArgument("pod CIDR is empty")
    return cidrs


def render(template: str, cidrs: list[str]) -> str:
    """The template with its placeholders filled; the result must be a JSON object."""
    ranges = ", ".join(json.dumps([{"subnet": c}]) for c in cidrs)
    text = template.replace("{{.PodCIDR}}", cidrs[0]).replace("{{.PodCIDRRanges}}", ranges)
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"the CNI config template does not render to JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument("the CNI config template must render to a JSON object")
    return text


def write_rendered(conf_dir: Path, template_path: Path, pod_cidr: str) -> Path:
    """Render ``template_path`` for ``pod_cidr`` into ``conf_dir`` (atomically). Blocking."""
    text = render(template_path.read_text(), parse_cidrs(pod_cidr))
    conf_dir.mkdir(parents=True, exist_ok=True)
    target = conf_dir / RENDERED_NAME
    tmp = conf_dir / f".{RENDERED_NAME}.tmp"
    tmp.write_text(text)
    os.replace(tmp, target)
    return target
