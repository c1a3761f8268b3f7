"""Which hosts serve a registry, and how to talk to them: containerd's ``hosts.toml`` directories.

Terms (containerd ``docs/hosts.md``):

- *registry*: the host[:port] part of an image reference (``docker.io``, ``localhost:5000``).
- *host namespace directory*: under the configured root, the first existing directory among
  ``<host>_<port>_`` (only when the registry has a port), ``<host:port>`` and ``_default``.
- *server*: the upstream in ``hosts.toml``'s top level ``server = "…"``; when absent, the default
  upstream (``https://registry-1.docker.io`` for ``docker.io``, ``https://<registry>`` otherwise,
  with containerd's special case for loopback registries, see :func:`default_upstream`).
- *host*: each ``[host."…"]`` table, a mirror tried (in file order) before the server.

A directory without ``hosts.toml`` contributes Docker's certificate files instead: ``*.crt`` are CA
bundles, ``*.cert`` with the matching ``*.key`` are client certificates, for the default upstream.

A host given as ``http://`` with an explicit TLS setting (``ca``, ``client`` or ``skip_verify``)
on a port other than 80 is tried over HTTPS first and falls back to plain HTTP
(:attr:`RegistryHost.fallback_http`), as containerd does. Reading is blocking file I/O: call
:func:`load_hosts` off the event loop.
"""

from __future__ import annotations

import ipaddress
import posixpath
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from runtime import units
from runtime.errors import InvalidArgument

CAPABILITIES = frozenset({"pull", "resolve", "push", "referrers"})
DEFAULT_CAPABILITIES = frozenset({"pull", "resolve", "push"})
DOCKER_HUB = "docker.io"
DOCKER_HUB_UPSTREAM = "registry-1.docker.io"


@dataclass(frozen=True, slots=True)
class RegistryHost:
    """One endpoint able to serve a registry's API.

    ``url`` is ``scheme://host[:port]``; requests go to ``url + path_prefix + "/<repo>/…"``.
    ``path_prefix`` is ``/v2`` unless the file gave a server path (``/v2`` is appended to it unless
    ``override_path``). ``fallback_http``: try HTTPS, and if the TLS handshake fails (the server
    speaks plain HTTP), use HTTP for this host from then on. ``dial_timeout``: connect timeout in
    seconds, None for the client's default.
    """

    url: str
    path_prefix: str = "/v2"
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    skip_verify: bool = False
    ca_files: tuple[Path, ...] = ()
    client_certs: tuple[tuple[Path, Path | None], ...] = ()
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    override_path: bool = False
    fallback_http: bool = False
    dial_timeout: float | None = None

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def authority(self) -> str:
        """``host[:port]`` as it appears in the URL."""
        return self.url.split("://", 1)[1]

    def __hash__(self) -> int:
        return hash((self.url, self.path_prefix))


@dataclass(slots=True)
class _Draft:
    """A host while being parsed; ``explicit_tls`` remembers whether TLS was configured."""

    scheme: str = ""
    authority: str = ""
    path: str = ""
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    skip_verify: bool | None = None
    ca_files: tuple[Path, ...] = ()
    client_certs: tuple[tuple[Path, Path | None], ...] = ()
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    override_path: bool = False
    dial_timeout: float | None = None

    @property
    def explicit_tls(self) -> bool:
        return bool(self.ca_files or self.client_certs) or self.skip_verify is not None


def load_hosts(config_dir: Path | None, registry: str) -> list[RegistryHost]:
    """The hosts to try for ``registry``, mirrors first and the server last."""
    drafts: list[_Draft] = []
    host_dir = find_host_dir(config_dir, registry) if config_dir is not None else None
    if host_dir is not None:
        hosts_file = host_dir / "hosts.toml"
        if hosts_file.is_file():
            drafts = _parse_hosts_file(hosts_file, hosts_file.read_bytes())
        else:
            drafts = [_docker_cert_files(host_dir)]
    if not drafts:
        drafts = [_Draft()]
    if not drafts[-1].authority:
        _fill_default_upstream(drafts[-1], registry)
    return [_finish(d) for d in drafts]


def find_host_dir(config_dir: Path, registry: str) -> Path | None:
    """The host namespace directory for ``registry`` under ``config_dir``, if any exists."""
    candidates = []
    host, port = split_host_port(registry)
    if port:
        candidates.append(f"{host}_{port}_")
    candidates += [registry, "_default"]
    for name in candidates:
        if (config_dir / name).is_dir():
            return config_dir / name
    return None


def split_host_port(authority: str) -> tuple[str, str]:
    """``("localhost", "5000")`` for ``localhost:5000``; IPv6 brackets are kept on the host."""
    if authority.startswith("["):
        end = authority.find("]")
        rest = authority[end + 1 :]
        return authority[: end + 1], rest[1:] if rest.startswith(":") else ""
    host, _, port = authority.partition(":")
    return host, port


def is_loopback(registry: str) -> bool:
    """Whether the registry is ``localhost`` or a loopback IP address (with any port)."""
    host = split_host_port(registry)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_upstream(registry: str) -> RegistryHost:
    """The host used when no configuration names a server for ``registry``.

    Loopback registries follow containerd: a port other than 443 means HTTPS without certificate
    verification, falling back to plain HTTP; port 80 means plain HTTP.
    """
    draft = _Draft()
    _fill_default_upstream(draft, registry)
    return _finish(draft)


def _fill_default_upstream(draft: _Draft, registry: str) -> None:
    draft.path = "/v2"
    draft.capabilities = DEFAULT_CAPABILITIES
    draft.override_path = False
    if registry == DOCKER_HUB:
        draft.scheme, draft.authority = "https", DOCKER_HUB_UPSTREAM
        return
    draft.authority = registry
    if is_loopback(registry):
        port = split_host_port(registry)[1]
        draft.scheme = "https" if port in ("", "443") else "http"
        if port != "80":
            draft.skip_verify = True
    else:
        draft.scheme = "https"


def _finish(draft: _Draft) -> RegistryHost:
    scheme, fallback = draft.scheme, False
    port = split_host_port(draft.authority)[1]
    if scheme == "http" and draft.explicit_tls and port != "80":
        scheme, fallback = "https", True
    return RegistryHost(
        url=f"{scheme}://{draft.authority}",
        path_prefix=draft.path,
        capabilities=draft.capabilities,
        skip_verify=bool(draft.skip_verify),
        ca_files=draft.ca_files,
        client_certs=draft.client_certs,
        headers=MappingProxyType(dict(draft.headers)),
        override_path=draft.override_path,
        fallback_http=fallback,
        dial_timeout=draft.dial_timeout,
    )


def _docker_cert_files(host_dir: Path) -> _Draft:
    draft = _Draft()
    files = sorted(p for p in host_dir.iterdir() if p.is_file())
    draft.ca_files = tuple(p for p in files if p.name.endswith(".crt"))
    certs = []
    for cert in (p for p in files if p.name.endswith(".cert")):
        key = cert.with_name(cert.name[: -len(".cert")] + ".key")
        certs.append((cert, key if key.is_file() else None))
    draft.client_certs = tuple(certs)
    return draft


def _parse_hosts_file(path: Path, data: bytes) -> list[_Draft]:
    try:
        doc = tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{path}: not valid TOML: {exc}") from None
    hosts = doc.get("host", {})
    if not isinstance(hosts, dict):
        raise InvalidArgument(f"{path}: key 'host' must be a table of [host.\"<url>\"] tables")
    drafts = []
    # tomllib keeps tables in file order: mirrors are tried in the order written.
    for name, table in hosts.items():
        where = f'host."{name}"'
        if not isinstance(table, dict):
            raise InvalidArgument(f"{path}: key {where} must be a table")
        drafts.append(_parse_host(path, where, name, table))
    server = doc.get("server", "")
    if not isinstance(server, str):
        raise InvalidArgument(f"{path}: key 'server' must be a string URL")
    drafts.append(_parse_host(path, "", server, doc))
    return drafts


def _parse_host(path: Path, where: str, server: str, table: Mapping[str, Any]) -> _Draft:
    def key(name: str) -> str:
        return f"{where}.{name}" if where else name

    def fail(name: str, problem: str) -> InvalidArgument:
        return InvalidArgument(f"{path}: key {key(name)!r}: {problem}")

    draft = _Draft()
    override = table.get("override_path", False)
    if not isinstance(override, bool):
        raise fail("override_path", "must be true or false")
    draft.override_path = override
    if server:
        try:
            _parse_server(draft, server)
        except ValueError as exc:
            raise InvalidArgument(f"{path}: key {(where or 'server')!r}: {exc}") from None
    capabilities = table.get("capabilities")
    if capabilities is not None:
        names = _strings(capabilities, fail("capabilities", "must be a list of strings"))
        unknown = [c for c in names if c.lower() not in CAPABILITIES]
        if unknown:
            known = ", ".join(sorted(CAPABILITIES))
            raise fail("capabilities", f"unknown capability {unknown[0]!r} (known: {known})")
        if names:
            draft.capabilities = frozenset(c.lower() for c in names)
    skip = table.get("skip_verify")
    if skip is not None and not isinstance(skip, bool):
        raise fail("skip_verify", "must be true or false")
    draft.skip_verify = skip
    base = path.parent
    ca = table.get("ca")
    if ca is not None:
        files = [ca] if isinstance(ca, str) else _strings(ca, fail("ca", "must be a path or list"))
        draft.ca_files = tuple(_abs(base, f) for f in files)
    client = table.get("client")
    if client is not None:
        draft.client_certs = _parse_client(base, client, fail)
    header = table.get("header")
    if header is not None:
        if not isinstance(header, dict):
            raise fail("header", "must be a table of name = value or [values]")
        for name, value in header.items():
            values = [value] if isinstance(value, str) else value
            err = fail(f"header.{name}", "must be a string or a list of strings")
            draft.headers[name] = tuple(_strings(values, err))
    timeout = table.get("dial_timeout")
    if timeout is not None:
        draft.dial_timeout = _parse_duration(timeout, fail("dial_timeout", "expected e.g. '1s'"))
    return draft


def _parse_server(draft: _Draft, server: str) -> None:
    if "://" not in server:
        server = "https://" + server
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{server!r} is not an http(s) URL")
    parts.port  # noqa: B018 -- raises ValueError for a malformed port
    draft.scheme, draft.authority = parts.scheme, parts.netloc
    url_path = parts.path
    if url_path:
        url_path = posixpath.normpath(url_path)
        if not url_path.endswith("/v2") and not draft.override_path:
            url_path = url_path.rstrip("/") + "/v2"
    elif not draft.override_path:
        url_path = "/v2"
    draft.path = "" if url_path == "/" else url_path


def _parse_client(base: Path, client: Any, fail: Any) -> tuple[tuple[Path, Path | None], ...]:
    if isinstance(client, str):
        return ((_abs(base, client), None),)
    if not isinstance(client, list):
        raise fail("client", "must be a path, or a list of paths or [cert, key] pairs")
    pairs: list[tuple[Path, Path | None]] = []
    for item in client:
        if isinstance(item, str):
            pairs.append((_abs(base, item), None))
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item):
            pairs.append((_abs(base, item[0]), _abs(base, item[1])))
        else:
            raise fail("client", f"invalid entry {item!r}; expected a path or [cert, key]")
    return tuple(pairs)


def _strings(value: Any, error: InvalidArgument) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error
    return value


def _abs(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _parse_duration(value: Any, error: InvalidArgument) -> float:
    """A Go duration string (``"1s"``, ``"1m30s"``, ``"500ms"``) in seconds."""
    if not isinstance(value, str) or not value:
        raise error
    try:
        return units.parse_duration(value, bare_seconds=False)
    except InvalidArgument:
        raise error from None
