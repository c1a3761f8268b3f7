"""pinnaced's configuration: TOML grouped into sections, each a frozen dataclass validated on
its own. ``deploy/config.toml`` is the fully commented template and the documentation.

Precedence: built-in defaults < the config file < command-line flags.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime import units
from runtime.cgroups.mounts import CgroupDriver
from runtime.distribution.reference import parse_reference
from runtime.errors import InvalidArgument

DEFAULT_CONFIG_PATH = Path("/etc/pinnace/config.toml")
DEFAULT_ROOT = Path("/var/lib/pinnace")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class SnapshotterChoice(enum.StrEnum):
    """``images.snapshotter``: overlayfs, the copying native one, or overlayfs where the
    kernel and file system allow it and native otherwise."""

    OVERLAY = "overlay"
    NATIVE = "native"
    AUTO = "auto"


def parse_duration(value: Any, *, key: str) -> float:
    """Seconds from a number or a string like ``"5m"``, ``"30s"``, ``"250ms"``."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{key}: expected a duration like '5m' or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        try:
            seconds = units.parse_duration(str(value))
        except InvalidArgument:
            raise InvalidArgument(
                f"{key}: {value!r} is not a duration; write e.g. '5m', '30s' or '250ms'"
            ) from None
    if seconds <= 0:
        raise InvalidArgument(f"{key}: must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Where pinnaced keeps things and where it listens."""

    root: Path = DEFAULT_ROOT
    state: Path = Path("/run/pinnace")
    address: str = "unix:///run/pinnace/pinnace.sock"
    socket_mode: int = 0o660
    # The group that owns the socket (a name or a number): with socket_mode 0660 its members
    # may use the CRI. "": root's group.
    socket_group: str = ""
    log_level: str = "info"
    # > 0: run the event loop in asyncio debug mode and log every callback that holds the loop
    # longer than this many milliseconds (the e2e harness runs daemons so and fails on them)
    slow_callback_ms: int = 0

    @property
    def socket_path(self) -> Path:
        """The socket's path: ``address`` is ``unix:///path`` or, as containerd's
        ``--address`` takes it, the bare ``/path``."""
        return Path(self.address.removeprefix("unix://"))

    def validate(self) -> None:
        bare = self.address.startswith("/")
        if not (bare or self.address.startswith("unix://")) or self.address == "unix://":
            raise InvalidArgument(
                f"daemon.address: {self.address!r} must be unix:///path/to/socket or"
                " /path/to/socket"
            )
        if not self.socket_path.is_absolute():
            raise InvalidArgument(
                f"daemon.address: socket path {self.socket_path} must be absolute"
            )
        if len(str(self.socket_path)) > 107:
            raise InvalidArgument(
                f"daemon.address: socket path {self.socket_path} is longer than the 107 "
                "bytes a unix socket path may have"
            )
        if self.log_level not in _LOG_LEVELS:
            raise InvalidArgument(
                f"daemon.log_level: {self.log_level!r} is not one of {', '.join(_LOG_LEVELS)}"
            )
        for name in ("root", "state"):
            if not getattr(self, name).is_absolute():
                raise InvalidArgument(f"daemon.{name}: {getattr(self, name)} must be absolute")
        if self.slow_callback_ms < 0:
            raise InvalidArgument(
                f"daemon.slow_callback_ms: {self.slow_callback_ms} must be 0 (off) or positive"
            )


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The Prometheus endpoint: off unless an address (``host:port``) is given."""

    address: str = ""

    def validate(self) -> None:
        if self.address:
            host, sep, port = self.address.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidArgument(
                    f"metrics.address: {self.address!r} must be host:port, e.g. 127.0.0.1:9464"
                )
            del host


@dataclass(frozen=True, slots=True)
class RegistryAuth:
    """Credentials for one registry host, as in a docker config.json ``auths`` entry."""

    username: str = ""
    password: str = ""
    auth: str = ""
    identity_token: str = ""


@dataclass(frozen=True, slots=True)
class ImagesConfig:
    """How images are pulled, stored and kept."""

    registry_hosts_dir: Path = Path("/etc/pinnace/certs.d")
    sandbox_image: str = "registry.k8s.io/pause:3.10"
    snapshotter: SnapshotterChoice = SnapshotterChoice.OVERLAY
    pull_progress_timeout: float = 300.0
    max_concurrent_downloads: int = 3
    platform: str = ""
    registry_auths: Mapping[str, RegistryAuth] = field(default_factory=dict)

    def validate(self) -> None:
        try:
            parse_reference(self.sandbox_image)
        except InvalidArgument as exc:  # found at start, not at the first pod that needs it
            raise InvalidArgument(f"images.sandbox_image: {exc}") from None
        if not isinstance(self.snapshotter, SnapshotterChoice):
            raise InvalidArgument(
                f"images.snapshotter: {self.snapshotter!r} must be overlay, native or auto"
            )
        if not 1 <= self.max_concurrent_downloads <= 64:
            raise InvalidArgument(
                "images.max_concurrent_downloads: must be between 1 and 64, got "
                f"{self.max_concurrent_downloads}"
            )


@dataclass(frozen=True, slots=True)
class HandlerConfig:
    """One OCI runtime handler (a RuntimeClass): which binary, and its state root."""

    binary: Path
    root: Path | None = None


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Container runtimes and cgroups."""

    default_handler: str = "runc"
    handlers: Mapping[str, HandlerConfig] = field(
        default_factory=lambda: {
            "runc": HandlerConfig(binary=Path("/usr/sbin/runc")),
            "crun": HandlerConfig(binary=Path("/usr/bin/crun")),
        }
    )
    cgroup_driver: CgroupDriver = CgroupDriver.CGROUPFS
    # The cgroup under which pods get theirs when kubelet gives no parent (cgroupfs driver).
    # "": /pinnace for the default root, else /pinnace-<hash of daemon.root>, so two
    # daemons on one host never share (see pod_cgroup_root).
    cgroup_root: str = ""
    conmon: Path = Path("/usr/bin/conmon")
    # ExecSync in runc 1.1 containers without seccomp, AppArmor, SELinux or a user namespace
    # runs pinnace-exec (compiled on the node with cc into exec_helper_dir, default
    # <daemon.root>/bin; kernel 5.11+) instead of `runc exec`; without a compiler, or false,
    # every exec is the OCI runtime's. Reviewed twice (docs/architecture.md, "pinnace-exec").
    exec_helper: bool = True
    exec_helper_dir: Path | None = None
    always_infra: bool = False
    shm_size: int = 64 * 1024 * 1024
    # containerd's option of the same name: hugepage limits are dropped (not failing the
    # container) where no hugetlb controller the OCI runtime can use exists.
    tolerate_missing_hugetlb_controller: bool = True

    def validate(self) -> None:
        if self.shm_size <= 0:
            raise InvalidArgument(f"runtime.shm_size: must be positive, got {self.shm_size}")
        if self.default_handler not in self.handlers:
            raise InvalidArgument(
                f"runtime.default_handler: {self.default_handler!r} is not among the "
                f"configured handlers ({', '.join(sorted(self.handlers)) or 'none'})"
            )
        if not isinstance(self.cgroup_driver, CgroupDriver):
            raise InvalidArgument(
                f"runtime.cgroup_driver: {self.cgroup_driver!r} must be cgroupfs or systemd"
            )
        if self.cgroup_root and (
            not self.cgroup_root.startswith("/")
            or self.cgroup_root == "/"
            or any(part in ("", ".", "..") for part in self.cgroup_root[1:].split("/"))
            or any(c.isspace() or c == ":" for c in self.cgroup_root)
        ):
            raise InvalidArgument(
                f"runtime.cgroup_root: {self.cgroup_root!r} must be an absolute cgroup path "
                "below the root such as /pinnace, without '.', '..', ':' or spaces"
            )


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Pod networking by CNI plugins: where their configs and binaries are."""

    cni_conf_dir: Path = Path("/etc/cni/net.d")
    cni_bin_dirs: tuple[Path, ...] = (Path("/opt/cni/bin"), Path("/usr/lib/cni"))
    cni_cache_dir: Path | None = None  # None: <daemon.root>/cni
    conf_template: Path | None = None
    setup_timeout: float = 120.0
    # Each CNI plugin run; a plugin still running then is killed and its ADD rolled back.
    plugin_timeout: float = 60.0

    def validate(self) -> None:
        if not self.cni_bin_dirs:
            raise InvalidArgument("network.cni_bin_dirs: give at least one directory")
        for path in (self.cni_conf_dir, *self.cni_bin_dirs):
            if not path.is_absolute():
                raise InvalidArgument(f"network: {path} must be an absolute path")


@dataclass(frozen=True, slots=True)
class CdiConfig:
    """Container Device Interface: where device vendors' CDI spec files are. Later
    directories have priority over earlier ones."""

    spec_dirs: tuple[Path, ...] = (Path("/etc/cdi"), Path("/var/run/cdi"))

    def validate(self) -> None:
        for path in self.spec_dirs:
            if not path.is_absolute():
                raise InvalidArgument(f"cdi.spec_dirs: {path} must be an absolute path")


@dataclass(frozen=True, slots=True)
class StatsConfig:
    """Container and pod statistics. Writable-layer usage is measured in the background:
    every ``layer_refresh_interval`` seconds, at most ``layer_file_budget`` files are examined
    (shared by all containers), so the cost of a refresh is bounded however many files
    containers write; stats RPCs answer from the last completed measurement."""

    layer_refresh_interval: float = 10.0
    layer_file_budget: int = 20_000

    def validate(self) -> None:
        if not 0 < self.layer_refresh_interval <= 3600:
            raise InvalidArgument(
                f"stats.layer_refresh_interval: {self.layer_refresh_interval} must be a "
                'duration between 0 and 1h, e.g. "10s"'
            )
        if self.layer_file_budget < 100:
            raise InvalidArgument(
                f"stats.layer_file_budget: {self.layer_file_budget} must be at least 100 files"
            )


@dataclass(frozen=True, slots=True)
class StreamingConfig:
    """The exec/attach/port-forward server the Exec, Attach and PortForward RPCs point at.

    Loopback only unless an operator says otherwise; port 0 takes a free port at start (the
    RPCs' URLs name the real one). TLS is off, on with a given key pair (``tls_cert`` and
    ``tls_key``), or on with a self-signed pair made at start (``tls_self_signed``)."""

    address: str = "127.0.0.1"
    port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_self_signed: bool = False
    # A connection with no open streams for this long is closed (the kubelet's 4h default).
    idle_timeout: float = 4 * 3600.0
    # How long a client has to open the streams its protocol needs after the upgrade.
    stream_creation_timeout: float = 30.0
    # A URL's token is single-use and expires after this long.
    token_timeout: float = 60.0
    # At most this many unused tokens are kept; the oldest is dropped for a new one.
    max_tokens: int = 1000

    def validate(self) -> None:
        if not self.address or any(c in self.address for c in "/ []"):
            raise InvalidArgument(
                f"streaming.address: {self.address!r} must be an IP address or host name "
                "(e.g. 127.0.0.1 or ::1), without brackets or port"
            )
        if not 0 <= self.port < 65536:
            raise InvalidArgument(f"streaming.port: {self.port} must be 0 (any free) to 65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidArgument("streaming: give both tls_cert and tls_key, or neither")
        if self.tls_cert is not None and self.tls_self_signed:
            raise InvalidArgument(
                "streaming: tls_self_signed and a given tls_cert/tls_key exclude each other"
            )
        if not 1 <= self.max_tokens <= 1_000_000:
            raise InvalidArgument(
                f"streaming.max_tokens: must be between 1 and 1000000, got {self.max_tokens}"
            )

    @property
    def tls(self) -> bool:
        return self.tls_self_signed or self.tls_cert is not None


@dataclass(frozen=True, slots=True)
class NriConfig:
    """NRI plugins (containerd/nri's protocol): the socket external plugins connect to, the
    pre-installed plugins started at boot and their drop-in configs, and how long a plugin
    may take to register and to answer one request."""

    enable: bool = True
    socket_path: Path = Path("/var/run/nri/nri.sock")
    disable_connections: bool = False
    plugin_path: Path = Path("/opt/nri/plugins")
    plugin_config_path: Path = Path("/etc/nri/conf.d")
    plugin_registration_timeout: float = 5.0
    plugin_request_timeout: float = 10.0

    def validate(self) -> None:
        for path in (self.socket_path, self.plugin_path, self.plugin_config_path):
            if not path.is_absolute():
                raise InvalidArgument(f"nri: {path} must be an absolute path")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    cdi: CdiConfig = field(default_factory=CdiConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    nri: NriConfig = field(default_factory=NriConfig)

    def validate(self) -> Config:
        self.network.validate()
        self.cdi.validate()
        self.stats.validate()
        self.streaming.validate()
        self.nri.validate()
        self.daemon.validate()
        self.metrics.validate()
        self.images.validate()
        self.runtime.validate()
        return self


def pod_cgroup_root(config: Config) -> str:
    """The cgroup pods without a kubelet-given parent live under: ``runtime.cgroup_root``, or
    one derived from the daemon's root directory (``/pinnace`` for the default root)."""
    if config.runtime.cgroup_root:
        return config.runtime.cgroup_root
    return default_cgroup_root(config.daemon.root)


def default_cgroup_root(root: Path) -> str:
    """``/pinnace`` for the default root, else ``/pinnace-<12 hex of sha256(root)>``."""
    if root == DEFAULT_ROOT:
        return "/pinnace"
    return "/pinnace-" + hashlib.sha256(str(root).encode()).hexdigest()[:12]


def _section(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"[{where}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise InvalidArgument(
                f"unknown key {where}.{key}; known keys: {', '.join(sorted(fields))}"
            )
        values[key] = _coerce(fields[key], value, f"{where}.{key}")
    return cls(**values)


def _coerce(f: dataclasses.Field[Any], value: Any, key: str) -> Any:
    kind = str(f.type)
    if key.endswith(("timeout", "_interval")):
        return parse_duration(value, key=key)
    if key.endswith("_dirs") and isinstance(value, list):
        if not all(isinstance(v, str) and v for v in value):
            raise InvalidArgument(f"{key}: expected a list of path strings")
        return tuple(Path(v) for v in value)
    if key.endswith("cgroup_driver"):
        try:
            return CgroupDriver(value)
        except ValueError:
            raise InvalidArgument(f"{key}: {value!r} must be cgroupfs or systemd") from None
    if key.endswith("images.snapshotter"):
        try:
            return SnapshotterChoice(value)
        except ValueError:
            raise InvalidArgument(f"{key}: {value!r} must be overlay, native or auto") from None
    if key.endswith("socket_mode"):
        try:
            mode = int(value, 8) if isinstance(value, str) else int(value)
        except ValueError:
            raise InvalidArgument(f'{key}: {value!r} is not an octal mode like "0660"') from None
        if not 0 <= mode <= 0o777:
            raise InvalidArgument(f"{key}: {value!r} is not a permission mode")
        return mode
    if kind.startswith("Path"):
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"{key}: expected a path string")
        return Path(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidArgument(f"{key}: expected true or false, got {value!r}")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"{key}: expected an integer, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise InvalidArgument(f"{key}: expected a string, got {value!r}")
        return value
    if kind.startswith("tuple[Path"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidArgument(f"{key}: expected a list of path strings")
        return tuple(Path(v) for v in value)
    if key.endswith("registry_auths"):
        return {host: _section(RegistryAuth, v, f"{key}.{host}") for host, v in value.items()}
    if key.endswith("handlers"):
        return {name: _section(HandlerConfig, v, f"{key}.{name}") for name, v in value.items()}
    return value


def load(path: Path | None, *, required: bool = False) -> Config:
    """Read and validate the config file at ``path`` (defaults when it does not exist and
    ``required`` is false)."""
    if path is None or not path.exists():
        if required and path is not None:
            raise InvalidArgument(f"config file {path} does not exist")
        return Config().validate()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"config file {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"config file {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset"
            f" {exc.start}); a config is TOML"
        ) from None
    except OSError as exc:  # a directory, no permission
        raise InvalidArgument(f"config file {path}: cannot read: {exc.strerror or exc}") from None
    return from_mapping(data, source=str(path))


def from_mapping(data: Mapping[str, Any], *, source: str = "config") -> Config:
    sections = {
        "daemon": DaemonConfig,
        "metrics": MetricsConfig,
        "images": ImagesConfig,
        "runtime": RuntimeConfig,
        "network": NetworkConfig,
        "cdi": CdiConfig,
        "stats": StatsConfig,
        "streaming": StreamingConfig,
        "nri": NriConfig,
    }
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in sections:
            raise InvalidArgument(
                f"{source}: unknown section [{key}]; known: {', '.join(sections)}"
            )
        try:
            values[key] = _section(sections[key], value, key)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{source}: {exc}") from exc
    try:
        return Config(**values).validate()
    except InvalidArgument as exc:
        raise InvalidArgument(f"{source}: {exc}") from exc


def with_overrides(config: Config, **overrides: Any) -> Config:
    """Apply command-line overrides given as ``section__key=value`` (None means not given)."""
    sections: dict[str, dict[str, Any]] = {}
    for name, value in overrides.items():
        if value is None:
            continue
        section, key = name.split("__", 1)
        sections.setdefault(section, {})[key] = value
    replaced = config
    for section, changes in sections.items():
        replaced = dataclasses.replace(
            replaced, **{section: dataclasses.replace(getattr(replaced, section), **changes)}
        )
    return replaced.validate()
