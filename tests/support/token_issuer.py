"""A Docker-registry token service for tests, written from the distribution token spec.

A registry configured with ``auth.token`` answers unauthenticated requests with
``401`` and ``WWW-Authenticate: Bearer realm="<issuer>/token",service="...",scope="..."``. The
client then asks this issuer for a token:

  GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]   (Basic credentials optional)
  POST /token  form: grant_type=password, username, password, service, scope   (OAuth2 flavour)

and retries with ``Authorization: Bearer <token>``. The token is a JWT signed (ES256) by a key whose
certificate chains to the registry's ``rootcertbundle``; docker-registry 2.8 finds the key through
the ``x5c`` header, then checks ``iss`` (its configured issuer), ``aud`` (its configured service),
``exp``/``nbf`` (60 s leeway) and the ``access`` claim against the action it needs.

Policy: a request with wrong credentials gets 401; correct credentials get every requested action;
no credentials get ``pull`` only when ``anonymous_pull`` is set, else an empty grant (the registry
will then answer 401 again). Every request is recorded in :attr:`TokenIssuer.requests`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.support.pki import Leaf, TestCA

SERVICE = "pinnace-test-registry"
ISSUER = "pinnace-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request the issuer answered: who asked, for what, and what it granted."""

    method: str
    username: str | None
    scopes: tuple[str, ...]
    service: str
    status: int
    granted: tuple[tuple[str, str, tuple[str, ...]], ...]  # (type, name, actions)


def parse_scope(scope: str) -> tuple[str, str, tuple[str, ...]]:
    """Split ``repository:name/with:port?:pull,push`` into (type, name, actions).

    The name may contain colons (a registry host with a port), so type is the first field and
    actions the last.
    """
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, tuple(a for a in actions.split(",") if a)


class TokenIssuer:
    """A token service on ``127.0.0.1:<port>`` served from a daemon thread; use as a context
    manager or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        ca: TestCA,
        *,
        users: Mapping[str, str],
        anonymous_pull: bool = False,
        expires_in: int = 300,
        issuer: str = ISSUER,
        service: str = SERVICE,
    ) -> None:
        self.users = dict(users)
        self.anonymous_pull = anonymous_pull
        self.expires_in = expires_in
        self.issuer = issuer
        self.service = service
        self.signing: Leaf = ca.issue("token-signer")
        self.rootcertbundle = ca.ca_pem
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> TokenIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                issuer._answer(self, "GET", query, self.headers.get("Authorization"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                issuer._answer(self, "POST", form, None)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests are recorded in TokenIssuer.requests instead

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-issuer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> TokenIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "issuer not started"
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    # -- tokens ----------------------------------------------------------------------------
    def issue_token(
        self,
        access: list[tuple[str, str, tuple[str, ...]]],
        *,
        subject: str = "",
        expires_in: int | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> str:
        """Sign a JWT granting ``access``; arguments let a test forge a bad token on purpose."""
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.signing.der()).decode()],
        }
        claims = {
            "iss": issuer if issuer is not None else self.issuer,
            "sub": subject,
            "aud": audience if audience is not None else self.service,
            "exp": now + (self.expires_in if expires_in is None else expires_in),
            "nbf": now - 1,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [{"type": t, "name": n, "actions": list(a)} for t, n, a in access],
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.signing.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64url(signature)}"

    def _authenticate(self, username: str | None, password: str | None) -> tuple[bool, bool]:
        """Return (authenticated, rejected): rejected means credentials were given and wrong."""
        if username is None:
            return False, False
        if self.users.get(username) == password:
            return True, False
        return False, True

    def _grant(
        self, scopes: list[str], *, authenticated: bool
    ) -> list[tuple[str, str, tuple[str, ...]]]:
        granted = []
        for scope in scopes:
            for one in scope.split(" "):
                if not one:
                    continue
                kind, name, actions = parse_scope(one)
                if not authenticated:
                    actions = ("pull",) if self.anonymous_pull and "pull" in actions else ()
                if actions:
                    granted.append((kind, name, actions))
        return granted

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        params: dict[str, list[str]],
        authorization: str | None,
    ) -> None:
        username: str | None = None
        password: str | None = None
        if method == "POST":
            if params.get("grant_type", [""])[0] != "password":
                self._reply(handler, 400, {"error": "unsupported_grant_type"})
                return
            username = params.get("username", [None])[0]
            password = params.get("password", [None])[0]
        elif authorization and authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization.split(" ", 1)[1]).decode()
            username, _, password = decoded.partition(":")
        scopes = params.get("scope", [])
        service = params.get("service", [""])[0]
        authenticated, rejected = self._authenticate(username, password)
        if rejected or (service and service != self.service):
            status = 401
            granted: list[tuple[str, str, tuple[str, ...]]] = []
        else:
            status = 200
            granted = self._grant(scopes, authenticated=authenticated)
        with self._lock:
            self.requests.append(
                TokenRequest(
                    method=method,
                    username=username,
                    scopes=tuple(scopes),
                    service=service,
                    status=status,
                    granted=tuple(granted),
                )
            )
        if status != 200:
            self._reply(handler, status, {"errors": [{"code": "UNAUTHORIZED"}]})
            return
        token = self.issue_token(granted, subject=username or "")
        self._reply(
            handler,
            200,
            {
                "token": token,
                "access_token": token,
                "expires_in": self.expires_in,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if status == 401:
            handler.send_header("WWW-Authenticate", 'Basic realm="pinnace-test-issuer"')
        handler.end_headers()
        handler.wfile.write(data)
