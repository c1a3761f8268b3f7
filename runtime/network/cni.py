"""Running CNI plugins as the CNI specification says (github.com/containernetworking/cni SPEC.md).

Terms:

attachment
    One container (here: a pod sandbox) joined to one network through one interface:
    ``(network name, container id, ifname)``. ``Attachment`` carries what the runtime knows
    about it: the netns path, CNI_ARGS and the capability arguments.
capability arguments
    Runtime data a plugin asks for by declaring ``"capabilities": {"portMappings": true}``; it
    receives them as ``runtimeConfig.portMappings`` (likewise ``bandwidth``, ``dns``, ``ips``).
result cache
    After a successful ADD the result, the config and the arguments are stored in
    ``<cache_dir>/results/<network>-<container id>-<ifname>`` (as libcni does), so a DEL after a
    daemon restart still has ``prevResult`` and the config the attachment was made with.

Operations: ``add`` (chain in order, each plugin gets the previous one's result as
``prevResult``; on failure the chain is DELeted again so nothing is left), ``delete`` (chain in
reverse, prevResult from the cache, every plugin tried a few times, runs with an empty
``CNI_NETNS`` when the netns is gone), ``check`` (spec ≥ 0.4.0), ``status`` and ``gc`` (≥ 1.1.0;
skipped for older configs such as Debian's plugins, which implement up to 1.0.0).

A plugin failure becomes FailedPrecondition — or Unavailable for the "try again later" codes
(11, 50, 51) — with the plugin name and its ``msg``/``details``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PinnaceError,
    Unavailable,
    Unimplemented,
)
from runtime.model.network import Bandwidth, DnsConfig, PortMapping, PortProtocol
from runtime.network.conf import NetworkConfig, PluginConf, parse_conflist
from runtime.network.result import CniResult, parse_result

_NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs file: its CLONE_NEW* type
_CLONE_NEWNET = 0x40000000
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_IFNAME_RE = re.compile(r"^[^/:\s]{1,15}$")
_RETRY_CODES = frozenset({11, 50, 51})
_CACHE_KIND = "pinnace-cni-cache/v1"
DEL_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Attachment:
    """What the runtime tells CNI about one container's attachment (libcni's RuntimeConf).

    ``netns`` is the pinned netns path, or empty when it is gone (DEL only). ``args`` become
    ``CNI_ARGS`` (see ``pod_args``).
    """

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: tuple[tuple[str, str], ...] = ()
    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: Bandwidth | None = None
    dns: DnsConfig | None = None
    ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _ID_RE.match(self.container_id):
            raise InvalidArgument(f"invalid CNI container id {self.container_id!r}")
        if not _IFNAME_RE.match(self.ifname):
            raise InvalidArgument(f"invalid interface name {self.ifname!r}")
        for key, value in self.args:
            if any(c in key + value for c in ";=") or not key:
                raise InvalidArgument(f"invalid CNI_ARGS entry {key}={value}")

    def cni_args(self) -> str:
        """The ``CNI_ARGS`` value: ``K=V;K=V``."""
        return ";".join(f"{k}={v}" for k, v in self.args)

    def capability_args(self) -> dict[str, Any]:
        """Capability name → the JSON value a plugin declaring it receives in runtimeConfig.
        Empty capabilities are left out (containerd's behaviour)."""
        caps: dict[str, Any] = {}
        mappings = []
        for pm in self.port_mappings:
            if pm.host_port <= 0:
                continue
            entry: dict[str, Any] = {
                "hostPort": pm.host_port,
                "containerPort": pm.container_port,
                "protocol": pm.protocol.value,
            }
            if pm.host_ip:
                entry["hostIP"] = pm.host_ip
            mappings.append(entry)
        if mappings:
            caps["portMappings"] = mappings
        bw = self.bandwidth
        if bw is not None and (bw.ingress_rate or bw.egress_rate):
            caps["bandwidth"] = {
                "ingressRate": bw.ingress_rate,
                "ingressBurst": bw.ingress_burst,
                "egressRate": bw.egress_rate,
                "egressBurst": bw.egress_burst,
            }
        if self.dns is not None and (self.dns.servers or self.dns.searches or self.dns.options):
            caps["dns"] = {
                "servers": list(self.dns.servers),
                "searches": list(self.dns.searches),
                "options": list(self.dns.options),
            }
        if self.ips:
            caps["ips"] = list(self.ips)
        return caps


def is_netns(path: str) -> bool:
    """Whether ``path`` opens a network namespace (an nsfs file of type CLONE_NEWNET), not
    merely a file that exists. Blocking (an open and an ioctl)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, _NS_GET_NSTYPE) == _CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


def pod_args(
    *, pod_namespace: str, pod_name: str, infra_container_id: str, pod_uid: str
) -> tuple[tuple[str, str], ...]:
    """The CNI_ARGS Kubernetes runtimes pass for a pod (``IgnoreUnknown=1`` first, so plugins
    that do not know the ``K8S_POD_*`` keys accept them)."""
    return (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", pod_namespace),
        ("K8S_POD_NAME", pod_name),
        ("K8S_POD_INFRA_CONTAINER_ID", infra_container_id),
        ("K8S_POD_UID", pod_uid),
    )


@dataclass(frozen=True, slots=True)
class CachedAttachment:
    """A result cache entry: the attachment as ADD saw it, its config and its result."""

    network: NetworkConfig
    attachment: Attachment
    result: dict[str, Any]
    path: Path


class CniPluginError(FailedPrecondition):
    """A plugin reported an error (or gave unusable output). ``code`` is the CNI error code,
    0 when the plugin printed no error object."""

    def __init__(self, message: str, *, plugin: str, code: int = 0) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.code = code


class CniPluginUnavailable(Unavailable):
    """A plugin said to try again later (codes 11, 50, 51)."""

    def __init__(self, message: str, *, plugin: str, code: int) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.code = code


def _merge(net: NetworkConfig, plugin: PluginConf, extra: Mapping[str, Any]) -> bytes:
    conf = plugin.as_dict()
    conf["name"] = net.name
    conf["cniVersion"] = net.cni_version
    conf.update(extra)
    return json.dumps(conf).encode()


class CniExecutor:
    """Runs the plugins of a ``NetworkConfig`` for attachments.

    ``bin_dirs`` are searched in order for plugin binaries (and passed as ``CNI_PATH``);
    ``cache_dir`` holds the result cache. ``timeout`` bounds each plugin run; a plugin that
    overruns it is killed. The constructor does no I/O.
    """

    def __init__(
        self, *, bin_dirs: Sequence[Path], cache_dir: Path, timeout: float = 120.0
    ) -> None:
        if not bin_dirs:
            raise InvalidArgument("at least one CNI bin dir is needed")
        self._bin_dirs = tuple(Path(d) for d in bin_dirs)
        self._cache_dir = Path(cache_dir)
        self._timeout = timeout

    # --- plugin execution -----------------------------------------------------------------

    def _find(self, plugin: str) -> Path:
        for d in self._bin_dirs:
            candidate = d / plugin
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
        dirs = ":".join(map(str, self._bin_dirs))
        raise CniPluginError(f"CNI plugin {plugin} not found in {dirs}", plugin=plugin)

    def _env(self, command: str, attachment: Attachment | None) -> dict[str, str]:
        # Plugins exec helpers (portmap runs iptables), so they get our PATH and friends.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        env["CNI_COMMAND"] = command
        env["CNI_PATH"] = os.pathsep.join(map(str, self._bin_dirs))
        if attachment is not None:
            netns = attachment.netns
            if netns and command == "DEL" and not is_netns(netns):
                # gone, or no longer a namespace (its pin was unmounted, leaving the empty
                # file): the spec lets DEL run without one, and plugins then release what
                # they keep outside it (IP reservations, host veths, iptables rules)
                netns = ""
            env["CNI_CONTAINERID"] = attachment.container_id
            env["CNI_NETNS"] = netns
            env["CNI_IFNAME"] = attachment.ifname
            env["CNI_ARGS"] = attachment.cni_args()
        return env

    async def _exec(
        self, plugin: str, command: str, stdin: bytes, attachment: Attachment | None
    ) -> bytes:
        path = await asyncio.to_thread(self._find, plugin)
        env = await asyncio.to_thread(self._env, command, attachment)
        proc = await asyncio.create_subprocess_exec(
            str(path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd="/",
        )
        try:
            async with asyncio.timeout(self._timeout):
                stdout, stderr = await proc.communicate(stdin)
        except BaseException as e:
            if proc.returncode is None:
                proc.kill()  # our own child, by its PID
                await asyncio.shield(proc.wait())
            if isinstance(e, TimeoutError):
                raise DeadlineExceeded(
                    f"CNI plugin {plugin} {command} did not finish within {self._timeout} s"
                ) from None
            raise
        if proc.returncode != 0:
            raise self._error(plugin, command, proc.returncode or 0, stdout, stderr)
        return stdout

    @staticmethod
    def _error(plugin: str, command: str, rc: int, stdout: bytes, stderr: bytes) -> PinnaceError:
        try:
            data = json.loads(stdout)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict) and ("msg" in data or "code" in data):
            raw_code = data.get("code")
            code = raw_code if isinstance(raw_code, int) else 0
            text = str(data.get("msg") or "")
            if data.get("details"):
                text += f": {data['details']}"
            message = f"CNI plugin {plugin} {command} failed: {text} (code {code})"
            if code in _RETRY_CODES:
                return CniPluginUnavailable(message, plugin=plugin, code=code)
            return CniPluginError(message, plugin=plugin, code=code)
        detail = (stderr or stdout).decode(errors="replace").strip()[-2000:]
        return CniPluginError(
            f"CNI plugin {plugin} {command} exited with status {rc}: {detail}", plugin=plugin
        )

    # --- result cache -----------------------------------------------------------------------

    def _cache_path(self, network: str, container_id: str, ifname: str) -> Path:
        if "/" in network or network.startswith("."):
            raise InvalidArgument(f"network name {network!r} cannot name a cache file")
        return self._cache_dir / "results" / f"{network}-{container_id}-{ifname}"

    def _write_cache(self, net: NetworkConfig, att: Attachment, result: dict[str, Any]) -> None:
        path = self._cache_path(net.name, att.container_id, att.ifname)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        entry = {
            "kind": _CACHE_KIND,
            "networkName": net.name,
            "containerId": att.container_id,
            "ifName": att.ifname,
            "netns": att.netns,
            "cniArgs": [list(kv) for kv in att.args],
            "config": net.raw_bytes.decode(),
            "attachment": _attachment_to_json(att),
            "result": result,
        }
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(entry, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _read_cache(self, path: Path) -> CachedAttachment | None:
        try:
            entry = json.loads(path.read_bytes())
            if entry.get("kind") != _CACHE_KIND:
                return None
            net = parse_conflist(entry["config"].encode())
            att = _attachment_from_json(entry["attachment"])
            result = entry["result"]
            if not isinstance(result, dict):
                return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidArgument):
            return None
        return CachedAttachment(network=net, attachment=att, result=result, path=path)

    def cached(self, container_id: str, ifname: str = "eth0") -> list[CachedAttachment]:
        """Every cached attachment of ``container_id``/``ifname`` (blocking file I/O)."""
        suffix = f"-{container_id}-{ifname}"
        found = []
        for path in sorted((self._cache_dir / "results").glob(f"*{suffix}")):
            entry = self._read_cache(path)
            if entry and entry.attachment.container_id == container_id:
                found.append(entry)
        return found

    def _cached_entries(self) -> list[CachedAttachment]:
        return [
            e
            for p in sorted((self._cache_dir / "results").glob("*"))
            if not p.name.startswith(".") and (e := self._read_cache(p)) is not None
        ]

    # --- operations -------------------------------------------------------------------------

    def _plugin_conf(
        self,
        net: NetworkConfig,
        plugin: PluginConf,
        attachment: Attachment,
        prev_result: Mapping[str, Any] | None,
    ) -> bytes:
        extra: dict[str, Any] = {}
        if prev_result is not None:
            extra["prevResult"] = prev_result
        caps = attachment.capability_args()
        runtime_config = {c: caps[c] for c in sorted(plugin.capabilities) if c in caps}
        if runtime_config:
            extra["runtimeConfig"] = runtime_config
        return _merge(net, plugin, extra)

    async def add(self, net: NetworkConfig, attachment: Attachment) -> CniResult:
        """ADD the attachment through the whole chain and cache the result. On any failure
        (or cancellation) the chain is DELeted again and the error raised."""
        if not attachment.netns:
            raise InvalidArgument("CNI ADD needs a network namespace path")
        prev: dict[str, Any] | None = None
        try:
            for plugin in net.plugins:
                conf = self._plugin_conf(net, plugin, attachment, prev)
                out = await self._exec(plugin.type, "ADD", conf, attachment)
                if not out.strip():
                    continue  # nothing new: the previous result stands
                try:
                    data = json.loads(out)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise CniPluginError(
                        f"CNI plugin {plugin.type} ADD printed invalid JSON: {e}",
                        plugin=plugin.type,
                    ) from None
                parse_result(data, requested_version=net.cni_version, plugin=plugin.type)
                prev = data
            result = parse_result(prev or {}, requested_version=net.cni_version)
            await asyncio.to_thread(self._write_cache, net, attachment, prev or {})
        except BaseException:
            await asyncio.shield(self._rollback(net, attachment, prev))
            raise
        return result

    async def _rollback(
        self, net: NetworkConfig, attachment: Attachment, prev: dict[str, Any] | None
    ) -> None:
        with contextlib.suppress(PinnaceError, OSError):
            await self._delete_chain(net, attachment, prev, attempts=1)
        path = self._cache_path(net.name, attachment.container_id, attachment.ifname)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)

    async def _delete_chain(
        self,
        net: NetworkConfig,
        attachment: Attachment,
        prev: Mapping[str, Any] | None,
        *,
        attempts: int,
    ) -> None:
        # prevResult on DEL arrived with spec 0.4.0.
        prev = prev if net.version >= (0, 4, 0) else None
        first_error: BaseException | None = None
        for plugin in reversed(net.plugins):
            conf = self._plugin_conf(net, plugin, attachment, prev)
            for attempt in range(attempts):
                try:
                    await self._exec(plugin.type, "DEL", conf, attachment)
                    break
                except (PinnaceError, OSError) as e:
                    if attempt == attempts - 1:
                        first_error = first_error or e
        if first_error is not None:
            raise first_error

    async def delete(self, net: NetworkConfig | None, attachment: Attachment) -> None:
        """DEL the attachment (plugins in reverse order), then drop its cache entry.

        The config and arguments cached at ADD time are preferred over ``net`` (they describe
        what was set up), so a DEL works after a restart or a config change; with neither a
        cache entry nor ``net`` there is nothing to undo. Capability arguments missing from
        ``attachment`` are taken from the cache. Every plugin is tried ``DEL_ATTEMPTS`` times
        and all plugins are run even if one fails; then the first error is raised and the cache
        entry kept, so a later DEL can try again. Idempotent.
        """
        entries = await asyncio.to_thread(self.cached, attachment.container_id, attachment.ifname)
        if net is not None and not any(e.network.name == net.name for e in entries):
            entries.append(CachedAttachment(net, attachment, {}, Path()))
        for entry in entries:
            att = attachment
            if not att.port_mappings and entry.attachment.port_mappings:
                # portmap needs the mappings on DEL; the caller may no longer know them.
                att = dataclasses.replace(att, port_mappings=entry.attachment.port_mappings)
            await self._delete_chain(
                entry.network, att, entry.result or None, attempts=DEL_ATTEMPTS
            )
            path = self._cache_path(entry.network.name, att.container_id, att.ifname)
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)

    async def check(self, net: NetworkConfig, attachment: Attachment) -> None:
        """CHECK the attachment (spec ≥ 0.4.0) against its cached ADD result. Unimplemented
        for older configs or ``disableCheck``; NotFound without a cached result."""
        if net.version < (0, 4, 0) or net.disable_check:
            raise Unimplemented(f"network {net.name} (cniVersion {net.cni_version}) has no CHECK")
        path = self._cache_path(net.name, attachment.container_id, attachment.ifname)
        entry = await asyncio.to_thread(self._read_cache, path)
        if entry is None:
            raise NotFound(f"no cached CNI result for {attachment.container_id} on {net.name}")
        for plugin in net.plugins:
            conf = self._plugin_conf(net, plugin, attachment, entry.result)
            await self._exec(plugin.type, "CHECK", conf, attachment)

    async def status(self, net: NetworkConfig) -> None:
        """Ask every plugin whether it can take ADDs (spec ≥ 1.1.0; older configs are assumed
        ready). Raises the plugin's error (Unavailable for codes 50/51)."""
        if net.version < (1, 1, 0):
            return
        for plugin in net.plugins:
            await self._exec(plugin.type, "STATUS", _merge(net, plugin, {}), None)

    async def gc(self, net: NetworkConfig, valid: Sequence[tuple[str, str]]) -> None:
        """Remove what no longer belongs to a live ``(container id, ifname)``: DEL every cached
        attachment of ``net`` not in ``valid`` (our own bookkeeping, any version), then, for
        spec ≥ 1.1.0 without ``disableGC``, run the plugins' GC with the valid attachments."""
        keep = set(valid)
        entries = await asyncio.to_thread(self._cached_entries)
        for entry in entries:
            att = entry.attachment
            if entry.network.name != net.name or (att.container_id, att.ifname) in keep:
                continue
            with contextlib.suppress(PinnaceError, OSError):
                await self.delete(None, dataclasses.replace(att, netns=""))
        if net.version < (1, 1, 0) or net.disable_gc:
            return
        listed = [{"containerID": c, "ifname": i} for c, i in sorted(keep)]
        for plugin in net.plugins:
            conf = _merge(net, plugin, {"cni.dev/valid-attachments": listed})
            await self._exec(plugin.type, "GC", conf, None)

    async def versions(self, plugin: str) -> tuple[str, ...]:
        """The spec versions a plugin binary supports (the VERSION command)."""
        out = await self._exec(plugin, "VERSION", b'{"cniVersion":"0.1.0"}', None)
        try:
            data = json.loads(out)
            return tuple(str(v) for v in data["supportedVersions"])
        except (ValueError, KeyError, TypeError):
            raise CniPluginError(
                f"CNI plugin {plugin} VERSION printed no supportedVersions", plugin=plugin
            ) from None


def _attachment_to_json(att: Attachment) -> dict[str, Any]:
    return {
        "containerId": att.container_id,
        "netns": att.netns,
        "ifName": att.ifname,
        "args": [list(kv) for kv in att.args],
        "portMappings": [
            [pm.protocol.value, pm.container_port, pm.host_port, pm.host_ip]
            for pm in att.port_mappings
        ],
        "bandwidth": dataclasses.asdict(att.bandwidth) if att.bandwidth else None,
        "dns": dataclasses.asdict(att.dns) if att.dns else None,
        "ips": list(att.ips),
    }


def _attachment_from_json(data: Mapping[str, Any]) -> Attachment:
    dns = data.get("dns")
    return Attachment(
        container_id=data["containerId"],
        netns=data.get("netns") or "",
        ifname=data["ifName"],
        args=tuple((str(k), str(v)) for k, v in data.get("args") or ()),
        port_mappings=tuple(
            PortMapping(PortProtocol(proto), container_port, host_port, host_ip)
            for proto, container_port, host_port, host_ip in data.get("portMappings") or ()
        ),
        bandwidth=Bandwidth(**data["bandwidth"]) if data.get("bandwidth") else None,
        dns=DnsConfig(
            servers=tuple(dns["servers"]),
            searches=tuple(dns["searches"]),
            options=tuple(dns["options"]),
            domain=dns["domain"],
        )
        if dns
        else None,
        ips=tuple(data.get("ips") or ()),
    )
