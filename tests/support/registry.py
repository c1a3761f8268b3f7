"""A real docker-registry (distribution 2.8, Debian's ``/usr/bin/docker-registry``) for tests.

Terms:
  variant      plain HTTP; TLS (a :class:`TestCA` server cert) with htpasswd Basic auth; or token
               auth against a :class:`TokenIssuer`. TLS can be combined with either auth.
  access log   the registry writes one Apache "combined" line per request to stdout; we parse them
               into :class:`AccessLogEntry` so tests can count requests ("blob fetched once").
  barrier      a request with a unique query string; once its log line is seen, every request
               whose response a test already received has been logged too (the registry logs a
               request right after serving it, so this holds in practice, not by contract).

The registry listens on ``127.0.0.1:0``; the port is read from its ``listening on`` log line, so
there is no race for a free port and no sleep: we wait for that line with a deadline.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.pki import Leaf, TestCA
from tests.support.token_issuer import TokenIssuer

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
HTPASSWD_BINARY = Path("/usr/bin/htpasswd")

_LISTENING = re.compile(r'msg="listening on (?P<addr>[^,"]+)')
_ACCESS = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<uri>\S+) '
    r'[^"]*" (?P<status>\d{3}) (?P<size>\d+|-)'
)


@dataclass(frozen=True, slots=True)
class AccessLogEntry:
    """One request the registry served, from its access log."""

    method: str
    uri: str  # path and query, as sent
    status: int
    size: int  # response body bytes

    @property
    def path(self) -> str:
        return self.uri.split("?", 1)[0]


def htpasswd_lines(users: dict[str, str]) -> str:
    """bcrypt htpasswd entries made by the real ``htpasswd -Bbn`` (what docker-registry accepts)."""
    lines = []
    for user, password in users.items():
        out = subprocess.run(
            [str(HTPASSWD_BINARY), "-Bbn", user, password],
            check=True,
            capture_output=True,
            text=True,
        )
        lines.append(out.stdout.strip())
    return "\n".join(lines) + "\n"


class Registry:
    """A docker-registry subprocess we own by PID; storage in a temp dir removed on :meth:`stop`.

    Build it with :meth:`plain`, :meth:`basic_auth` or :meth:`token_auth`, then :meth:`start`
    (or use it as a context manager).
    """

    def __init__(
        self,
        *,
        parent_dir: Path | None = None,
        tls: Leaf | None = None,
        ca: TestCA | None = None,
        users: dict[str, str] | None = None,
        token_issuer: TokenIssuer | None = None,
    ) -> None:
        if users and token_issuer:
            raise ValueError("choose htpasswd users or a token issuer, not both")
        self.workdir = Path(tempfile.mkdtemp(prefix="pinnace-registry-", dir=parent_dir))
        self.storage = self.workdir / "storage"
        self.tls = tls
        self.ca = ca
        self.users = dict(users or {})
        self.token_issuer = token_issuer
        self.config_path = self.workdir / "config.yml"
        self.address: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cond = threading.Condition()
        self._stderr: list[str] = []
        self._access: list[AccessLogEntry] = []
        self._readers: list[threading.Thread] = []
        self._eof = 0

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def plain(cls, *, parent_dir: Path | None = None) -> Registry:
        """Plain HTTP, no auth."""
        return cls(parent_dir=parent_dir)

    @classmethod
    def basic_auth(
        cls, ca: TestCA, users: dict[str, str], *, parent_dir: Path | None = None
    ) -> Registry:
        """HTTPS with a certificate from ``ca`` and htpasswd (bcrypt) Basic auth for ``users``."""
        return cls(parent_dir=parent_dir, tls=ca.issue_server(), ca=ca, users=users)

    @classmethod
    def token_auth(
        cls,
        issuer: TokenIssuer,
        *,
        ca: TestCA | None = None,
        parent_dir: Path | None = None,
    ) -> Registry:
        """Bearer-token auth against ``issuer`` (started already); HTTPS too when ``ca`` given."""
        tls = ca.issue_server() if ca is not None else None
        return cls(parent_dir=parent_dir, tls=tls, ca=ca, token_issuer=issuer)

    # -- addresses -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry host as it appears in image references."""
        if self.address is None:
            raise RuntimeError("registry not started")
        return self.address

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def client(self, **kwargs: object) -> httpx.Client:
        """An httpx client with this registry's base URL and CA trust (no credentials)."""
        verify: ssl.SSLContext | bool = True
        if self.ca:
            verify = ssl.create_default_context(cafile=str(self.ca.ca_pem))
        return httpx.Client(base_url=self.url, verify=verify, timeout=30, **kwargs)  # type: ignore[arg-type]

    # -- lifecycle -------------------------------------------------------------------------
    def _config(self) -> dict[str, object]:
        http: dict[str, object] = {
            "addr": "127.0.0.1:0",
            "secret": uuid.uuid4().hex,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            http["tls"] = {
                "certificate": str(self.tls.files.cert),
                "key": str(self.tls.files.key),
            }
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
        }
        if self.users:
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(htpasswd_lines(self.users))
            config["auth"] = {"htpasswd": {"realm": "pinnace-test", "path": str(htpasswd)}}
        elif self.token_issuer:
            config["auth"] = {
                "token": {
                    "realm": self.token_issuer.realm,
                    "service": self.token_issuer.service,
                    "issuer": self.token_issuer.issuer,
                    "rootcertbundle": str(self.token_issuer.rootcertbundle),
                }
            }
        return config

    def start(self, *, timeout: float = 30.0) -> Registry:
        """Start the registry and return once it logs ``listening on`` (or raise on timeout/exit).

        The YAML is written as JSON, which YAML 1.2 (and the registry's parser) reads as is.
        """
        if not REGISTRY_BINARY.exists():
            raise RuntimeError(f"{REGISTRY_BINARY} is missing (apt-get install docker-registry)")
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self._config(), indent=2))
        self._proc = subprocess.Popen(
            [str(REGISTRY_BINARY), "serve", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
        )
        for stream, handle in (
            (self._proc.stdout, self._on_stdout),
            (self._proc.stderr, self._on_stderr),
        ):
            reader = threading.Thread(
                target=self._read_lines, args=(stream, handle), name="registry-log", daemon=True
            )
            reader.start()
            self._readers.append(reader)
        with self._cond:
            ready = self._cond.wait_for(lambda: self.address is not None or self._eof == 2, timeout)
        if self.address is None:
            tail = "\n".join(self._stderr[-30:])
            self.stop()
            what = "exited" if ready else f"was not listening within {timeout}s"
            raise RuntimeError(f"docker-registry {what}; stderr:\n{tail}")
        return self

    def _read_lines(self, stream: object, handle: Callable[[str], None]) -> None:
        assert stream is not None
        for raw in stream:  # type: ignore[attr-defined]
            handle(raw.decode(errors="replace").rstrip("\n"))
        with self._cond:
            self._eof += 1
            self._cond.notify_all()

    def _on_stderr(self, line: str) -> None:
        with self._cond:
            self._stderr.append(line)
            match = _LISTENING.search(line)
            if match and self.address is None:
                addr = match.group("addr").strip()
                self.address = addr.replace("[::]", "127.0.0.1")
                self._cond.notify_all()

    def _on_stdout(self, line: str) -> None:
        match = _ACCESS.match(line)
        if not match:
            return
        size = match.group("size")
        entry = AccessLogEntry(
            method=match.group("method"),
            uri=match.group("uri"),
            status=int(match.group("status")),
            size=0 if size == "-" else int(size),
        )
        with self._cond:
            self._access.append(entry)
            self._cond.notify_all()

    def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM the registry by PID, wait (SIGKILL after ``timeout``), remove its temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for reader in self._readers:
                reader.join(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._readers.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation -----------------------------------------------------------------------
    def access_log(self) -> list[AccessLogEntry]:
        """A copy of every request logged so far, oldest first."""
        with self._cond:
            return list(self._access)

    def stderr_lines(self) -> list[str]:
        with self._cond:
            return list(self._stderr)

    def requests(
        self, *, method: str | None = None, path_contains: str = "", status: int | None = None
    ) -> list[AccessLogEntry]:
        """Logged requests filtered by method, a substring of the path and the status code."""
        return [
            e
            for e in self.access_log()
            if (method is None or e.method == method)
            and path_contains in e.path
            and (status is None or e.status == status)
        ]

    def blob_fetches(self, digest: str) -> list[AccessLogEntry]:
        """Successful GETs of the blob ``digest`` (any repository)."""
        return [
            e
            for e in self.requests(method="GET", path_contains=f"/blobs/{digest}")
            if e.status in (200, 206)
        ]

    def wait_for_log(
        self, predicate: Callable[[AccessLogEntry], bool], *, timeout: float = 10.0
    ) -> AccessLogEntry:
        """Wait until a logged request satisfies ``predicate``; raise TimeoutError otherwise."""
        found: list[AccessLogEntry] = []

        def seen() -> bool:
            found[:] = [e for e in self._access if predicate(e)]
            return bool(found)

        with self._cond:
            if not self._cond.wait_for(seen, timeout):
                raise TimeoutError(f"no matching registry request within {timeout}s")
        return found[0]

    def barrier(self, *, timeout: float = 10.0) -> None:
        """Make every request already answered visible in :meth:`access_log` (see module doc)."""
        marker = f"/v2/?barrier={uuid.uuid4().hex}"
        with self.client() as client:
            client.get(marker)
        self.wait_for_log(lambda e: e.uri == marker, timeout=timeout)

    # -- faults ----------------------------------------------------------------------------
    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps the bytes of ``digest``."""
        algorithm, _, hexpart = digest.partition(":")
        return (
            self.storage / "docker/registry/v2/blobs" / algorithm / hexpart[:2] / hexpart / "data"
        )

    def corrupt_blob(self, digest: str, *, replacement: bytes | None = None) -> bytes:
        """Overwrite the stored bytes of ``digest`` so the registry serves content that no longer
        hashes to it. By default every byte is inverted (same length, so Content-Length still
        matches and only the digest check can catch it). Returns the bytes now served."""
        path = self.blob_data_path(digest)
        original = path.read_bytes()
        data = replacement if replacement is not None else bytes(b ^ 0xFF for b in original)
        path.write_bytes(data)
        return data
