"""``pinnace doctor``: checks the node and the daemon, one line per check with what to do.

The daemon is asked first (is it up, its conditions, its socket); its effective configuration
(verbose Status) says where everything is; without a daemon the config file does, then the
defaults; options override. Host probes are :mod:`cri.doctor.host`. Exit status 1 when a
finding blocks running pods (level ``fail``), else 0; ``-o json|yaml`` prints the findings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import grpc

from cri.cli.client import Client
from cri.cli.failures import describe
from cri.cli.render import add_output_option, dump, structured
from cri.doctor.host import Host, check_host
from cri.doctor.model import Finding, Level, NodeSettings, blocking
from cri.wire import unix_address

DEFAULT_CONFIG = Path("/etc/pinnace/config.toml")


def settings_from(data: dict[str, Any], base: NodeSettings) -> NodeSettings:
    """``base`` updated from a config mapping (the TOML file or the daemon's JSON of it)."""
    daemon, images = data.get("daemon") or {}, data.get("images") or {}
    runtime, network = data.get("runtime") or {}, data.get("network") or {}
    streaming = data.get("streaming") or {}
    changes: dict[str, Any] = {}
    for key, section, name in (
        ("root", daemon, "root"),
        ("state", daemon, "state"),
        ("registry_hosts_dir", images, "registry_hosts_dir"),
        ("cni_conf_dir", network, "cni_conf_dir"),
        ("conmon", runtime, "conmon"),
    ):
        if section.get(name):
            changes[key] = Path(section[name])
    if daemon.get("address"):
        changes["socket"] = Path(unix_address(daemon["address"]).removeprefix("unix://"))
    if network.get("cni_bin_dirs"):
        changes["cni_bin_dirs"] = tuple(Path(p) for p in network["cni_bin_dirs"])
    handlers = runtime.get("handlers") or {}
    if handlers:
        runtimes = dict(base.runtimes)
        for name, handler in handlers.items():
            if isinstance(handler, dict) and handler.get("binary"):
                runtimes[name] = Path(handler["binary"])
        changes["runtimes"] = runtimes
    if runtime.get("default_handler"):
        changes["default_runtime"] = runtime["default_handler"]
    if streaming:
        changes["streaming"] = f"{streaming.get('address', '127.0.0.1')}:{streaming.get('port', 0)}"
    return dataclasses.replace(base, **changes)


def _from_options(args: argparse.Namespace, base: NodeSettings) -> NodeSettings:
    changes: dict[str, Any] = {}
    for name in ("root", "state", "registry_hosts_dir", "cni_conf_dir", "conmon"):
        if getattr(args, name):
            changes[name] = Path(getattr(args, name))
    if args.cni_bin_dir:
        changes["cni_bin_dirs"] = tuple(Path(p) for p in args.cni_bin_dir)
    if args.runtime:
        runtimes = {}
        for pair in args.runtime:
            name, _, path = pair.partition("=")
            runtimes[name] = Path(path)
        changes["runtimes"] = runtimes
        changes["default_runtime"] = args.runtime[0].partition("=")[0]
    return dataclasses.replace(base, **changes)


def _daemon(c: Client) -> tuple[list[Finding], dict[str, Any] | None]:
    """Findings about pinnaced, and its effective config when it answers."""
    try:
        version = c.version()
        status = c.status(verbose=True)
    except grpc.RpcError as exc:
        line = describe(exc, address=c.address).line  # type: ignore[arg-type]
        return [
            Finding(
                "pinnaced",
                Level.FAIL,
                line,
                "start it: systemctl start pinnace (or pinnaced --config ...)",
            )
        ], None
    out = [
        Finding(
            "pinnaced", Level.OK, f"{version.runtime_name} {version.runtime_version} at {c.address}"
        )
    ]
    for condition in status.status.conditions:
        if condition.status:
            out.append(Finding(f"condition {condition.type}", Level.OK, "true"))
        else:
            fix = (
                "add a CNI network config (pods on the host network still run)"
                if condition.type == "NetworkReady"
                else "see pinnaced's log: journalctl -u pinnace"
            )
            out.append(
                Finding(
                    f"condition {condition.type}",
                    Level.FAIL,
                    f"false: {condition.reason}: {condition.message}",
                    fix,
                )
            )
    raw = status.info.get("config")
    return out, (json.loads(raw) if raw else None)


def _socket(path: Path) -> Finding:
    try:
        info = os.stat(path)
    except OSError as exc:
        return Finding("socket", Level.SKIP, f"{path}: {exc.strerror}")
    mode = stat.filemode(info.st_mode)
    detail = f"{path} {mode} uid={info.st_uid} gid={info.st_gid}"
    if info.st_mode & stat.S_IWOTH:
        return Finding(
            "socket",
            Level.WARN,
            detail + ": anyone may drive the runtime",
            'set [daemon] socket_mode = "0660"',
        )
    return Finding("socket", Level.OK, detail)


def _streaming(settings: NodeSettings) -> Finding:
    host = settings.streaming.rpartition(":")[0]
    if host in ("127.0.0.1", "::1", "localhost"):
        return Finding("streaming", Level.OK, f"{settings.streaming} (loopback; port 0: any free)")
    return Finding(
        "streaming",
        Level.WARN,
        f"{settings.streaming} is reachable off the node",
        "exec/attach URLs need TLS there: [streaming] tls_cert/tls_key",
    )


def diagnose(c: Client, args: argparse.Namespace, host: Host) -> list[Finding]:
    findings, effective = _daemon(c)
    settings = dataclasses.replace(NodeSettings(), socket=Path(c.address.removeprefix("unix://")))
    config_path = Path(args.config) if args.config else DEFAULT_CONFIG
    if effective is not None:
        settings = settings_from(effective, settings)
    elif config_path.is_file():
        try:
            settings = settings_from(tomllib.loads(config_path.read_text()), settings)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            findings.append(
                Finding(
                    "config",
                    Level.FAIL,
                    f"{config_path}: {exc}",
                    "fix the file (deploy/config.toml is the commented template)",
                )
            )
    settings = _from_options(args, settings)
    findings.append(_socket(settings.socket))
    findings.extend(check_host(settings, host))
    findings.append(_streaming(settings))
    return findings


_MARK = {Level.OK: "ok", Level.WARN: "warn", Level.FAIL: "FAIL", Level.SKIP: "skip"}


def render(findings: list[Finding]) -> str:
    width = max(len(f.check) for f in findings)
    lines = []
    for f in findings:
        text = f"{_MARK[f.level]:4}  {f.check:{width}}  {f.detail}"
        if f.fix and f.level is not Level.OK:
            text += f" -> {f.fix}"
        lines.append(text)
    return "\n".join(lines)


def cmd_doctor(c: Client, args: argparse.Namespace) -> int:
    host = Host(proc=Path(args.proc), sys=Path(args.sys))
    findings = diagnose(c, args, host)
    if structured(args.output):
        data = {"findings": [f.to_dict() for f in findings], "blocking": blocking(findings)}
        print(dump(data, args.output))
    else:
        print(render(findings))
    return 1 if blocking(findings) else 0


def add_parsers(sub: Any) -> None:
    """Add ``doctor``."""
    p = sub.add_parser("doctor", help="check the node and pinnaced; say what to fix")
    add_output_option(p, formats=("table", "json", "yaml"))
    p.add_argument(
        "--config", help=f"pinnaced's config file when it is down (default {DEFAULT_CONFIG})"
    )
    p.add_argument("--root", help="pinnaced's root directory")
    p.add_argument("--state", help="pinnaced's state directory")
    p.add_argument("--registry-hosts-dir", help="hosts.toml directories")
    p.add_argument("--cni-conf-dir", help="CNI network configs")
    p.add_argument("--cni-bin-dir", action="append", help="CNI plugin directory (repeat)")
    p.add_argument("--conmon", help="conmon binary")
    p.add_argument(
        "--runtime", action="append", metavar="NAME=PATH",
        help="OCI runtime handler and binary (repeat; the first is the default)",
    )  # fmt: skip
    p.add_argument("--proc", default="/proc", help="where to read /proc (tests)")
    p.add_argument("--sys", default="/sys", help="where to read /sys (tests)")
    p.set_defaults(func=cmd_doctor)
