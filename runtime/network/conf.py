"""CNI network configuration files, loaded the way libcni and containerd do.

Terms:

conf dir
    A directory (``/etc/cni/net.d``) of ``*.conflist``, ``*.conf`` and ``*.json`` files. They
    are tried in file-name order; the first valid one is *the* network (so ``10-bridge.conflist``
    wins over ``99-loopback.conf``).
conflist
    ``{"cniVersion", "name", "plugins": [{"type", ...}, ...]}``: a chain of plugins run in
    order on ADD and in reverse on DEL.
single conf
    ``{"cniVersion", "name", "type", ...}`` in a ``.conf``/``.json`` file: wrapped into a
    conflist of that one plugin.

Invalid files (unreadable, bad JSON, no name/type/plugins, unknown cniVersion) are skipped; the
reason is kept so ``NetworkStatus`` can say why no network is ready.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument

EXTENSIONS = (".conflist", ".conf", ".json")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
MAX_CONFIG_BYTES = 1 << 20


def parse_version(version: str) -> tuple[int, int, int]:
    """``"1.0.0"`` → ``(1, 0, 0)``; InvalidArgument otherwise."""
    m = _VERSION_RE.match(version) if isinstance(version, str) else None
    if not m:
        raise InvalidArgument(f"invalid cniVersion {version!r}: expected X.Y.Z")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@dataclass(frozen=True, slots=True)
class PluginConf:
    """One plugin of a chain: its ``type`` (the binary's name) and its raw JSON object text."""

    type: str
    raw: str

    def as_dict(self) -> dict[str, Any]:
        """A fresh copy of the plugin's JSON object."""
        value = json.loads(self.raw)
        assert isinstance(value, dict)
        return value

    @property
    def capabilities(self) -> frozenset[str]:
        """The runtime capabilities this plugin declares enabled (``portMappings``, ...)."""
        caps = self.as_dict().get("capabilities")
        if not isinstance(caps, dict):
            return frozenset()
        return frozenset(k for k, v in caps.items() if v is True)


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """A validated network: a conflist, or a single conf wrapped into one."""

    name: str
    cni_version: str
    plugins: tuple[PluginConf, ...]
    raw_bytes: bytes
    path: Path | None = None
    disable_check: bool = False
    disable_gc: bool = False

    @property
    def version(self) -> tuple[int, int, int]:
        """``cni_version`` as a comparable tuple."""
        return parse_version(self.cni_version)


def _plugin(value: Any, where: str) -> PluginConf:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}: a plugin must be a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidArgument(f"{where}: plugin has no 'type'")
    if "/" in kind or kind in (".", ".."):
        raise InvalidArgument(f"{where}: plugin type {kind!r} is not a file name")
    return PluginConf(type=kind, raw=json.dumps(value, sort_keys=True))


def _common(data: Any) -> tuple[str, str]:
    if not isinstance(data, dict):
        raise InvalidArgument("the configuration is not a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("missing 'name'")
    version = data.get("cniVersion")
    if version is None:
        raise InvalidArgument("missing 'cniVersion'")
    parse_version(version)
    return name, version


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidArgument(f"invalid JSON: {e}") from None


def parse_conflist(raw: bytes, path: Path | None = None) -> NetworkConfig:
    """Parse and validate a conflist."""
    data = _decode(raw)
    name, version = _common(data)
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise InvalidArgument("missing or empty 'plugins'")
    return NetworkConfig(
        name=name,
        cni_version=version,
        plugins=tuple(_plugin(p, f"plugins[{i}]") for i, p in enumerate(plugins)),
        raw_bytes=raw,
        path=path,
        disable_check=data.get("disableCheck") is True,
        disable_gc=data.get("disableGC") is True,
    )


def parse_conf(raw: bytes, path: Path | None = None) -> NetworkConfig:
    """Parse and validate a single-plugin conf, wrapped into a conflist of one."""
    data = _decode(raw)
    name, version = _common(data)
    wrapped = json.dumps({"cniVersion": version, "name": name, "plugins": [data]}).encode()
    return NetworkConfig(
        name=name,
        cni_version=version,
        plugins=(_plugin(data, "conf"),),
        raw_bytes=wrapped,
        path=path,
    )


@dataclass(frozen=True, slots=True)
class ConfigLoad:
    """The outcome of reading a conf dir: the network (or None), why not, and skipped files."""

    config: NetworkConfig | None
    reason: str
    skipped: tuple[tuple[Path, str], ...] = ()


def candidate_files(conf_dir: Path) -> list[Path]:
    """The conf dir's config files in the order they are tried (missing dir: none)."""
    try:
        entries = sorted(conf_dir.iterdir(), key=lambda p: p.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [p for p in entries if p.suffix in EXTENSIONS and p.is_file()]


def load_default(conf_dir: Path) -> ConfigLoad:
    """The first valid network in ``conf_dir`` (blocking file I/O: call off the event loop)."""
    skipped: list[tuple[Path, str]] = []
    for path in candidate_files(conf_dir):
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_CONFIG_BYTES + 1)
            if len(raw) > MAX_CONFIG_BYTES:
                raise InvalidArgument(f"larger than {MAX_CONFIG_BYTES} bytes")
            config = (
                parse_conflist(raw, path) if path.suffix == ".conflist" else parse_conf(raw, path)
            )
        except (InvalidArgument, OSError) as e:
            skipped.append((path, str(e)))
            continue
        return ConfigLoad(config, "", tuple(skipped))
    reason = f"no network config found in {conf_dir}"
    if skipped:
        reason += ": " + "; ".join(f"{p.name}: {why}" for p, why in skipped)
    return ConfigLoad(None, reason, tuple(skipped))
