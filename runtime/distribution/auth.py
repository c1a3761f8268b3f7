"""Registry authentication: credentials, ``WWW-Authenticate`` challenges and the token dance.

Terms:

- *challenge*: what a registry sends with a 401: ``Basic realm="…"`` (send the username and
  password on every request) or ``Bearer realm="…",service="…",scope="…"`` (fetch a token from the
  *realm* URL for that *service* and *scopes*, then send ``Authorization: Bearer <token>``).
- *scope*: an access request, ``repository:<path>:pull`` or ``repository:<path>:pull,push``.
- *identity token*: a long-lived OAuth2 refresh token (``docker login`` with some registries);
  exchanged with ``POST realm`` ``grant_type=refresh_token``. A *registry token* is a bearer token
  given directly by the caller, sent as is.

The :class:`Authorizer` remembers, per host, the last challenge it saw, so later requests to that
host carry credentials from the start instead of waiting for a 401; bearer tokens are cached per
(realm, service, scopes, user) until they expire (``expires_in``, 60 s when absent).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from runtime import lazy
from runtime.distribution.failures import registry_error
from runtime.errors import InvalidArgument, RegistryUnavailable, Unauthenticated

if TYPE_CHECKING:
    import httpx
else:  # imported with the first client (transport.load_http_stack), not at the daemon's start
    httpx = lazy.module("httpx")

DEFAULT_TOKEN_LIFETIME = 60.0
CLIENT_ID = "pinnace"
DOCKER_HUB_HOSTS = frozenset({"docker.io", "registry-1.docker.io", "index.docker.io"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a caller gives to authenticate to one registry. Secrets are kept out of ``repr``."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)

    @property
    def has_password(self) -> bool:
        return bool(self.username or self.password)


def make_credentials(
    *,
    username: str = "",
    password: str = "",
    auth: str = "",
    identity_token: str = "",
    registry_token: str = "",
) -> Credentials | None:
    """Credentials from the fields a CRI AuthConfig, a docker config.json entry or pinnace's
    config carries: ``auth`` (base64 of ``user:password``) stands in for a missing username
    and password. None when every field is empty (anonymous)."""
    if auth and not username:
        decoded = credentials_from_auth(auth)
        username, password = decoded.username, decoded.password
    if not (username or password or identity_token or registry_token):
        return None
    return Credentials(
        username=username,
        password=password,
        identity_token=identity_token,
        registry_token=registry_token,
    )


def credentials_from_auth(auth_b64: str) -> Credentials:
    """Decode Docker's ``auth`` field, base64 of ``user:password``."""
    try:
        text = base64.b64decode(auth_b64.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("auth is not valid base64 of 'username:password'") from None
    username, colon, password = text.partition(":")
    if not colon:
        raise InvalidArgument("auth does not contain 'username:password' (no ':' after decoding)")
    return Credentials(username=username, password=password)


def credentials_for_registry(
    registry: str, credentials: Credentials | None
) -> Callable[[str], Credentials | None]:
    """A ``credentials_for(host)`` that gives ``credentials`` only to ``registry`` itself (for
    ``docker.io``, also to its API hosts), never to mirrors."""

    def lookup(host: str) -> Credentials | None:
        if host == registry or (registry in DOCKER_HUB_HOSTS and host in DOCKER_HUB_HOSTS):
            return credentials
        return None

    return lookup


@dataclass(frozen=True, slots=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge; ``scheme`` is lowercase, parameter names too."""

    scheme: str
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(s for s in self.params.get("scope", "").split(" ") if s)


_SEPARATORS = frozenset(' \t"(),/:;<=>?@[]\\{}')


def _is_token_char(c: str) -> bool:
    return 32 < ord(c) < 127 and c not in _SEPARATORS


def parse_challenges(values: str | Iterable[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (one or several challenges in each)."""
    items = [values] if isinstance(values, str) else list(values)
    out: list[Challenge] = []
    for text in items:
        out.extend(_parse_header(text))
    return out


def _parse_header(s: str) -> list[Challenge]:
    pos, n = 0, len(s)

    def skip_space() -> None:
        nonlocal pos
        while pos < n and s[pos] in " \t":
            pos += 1

    def token() -> str:
        nonlocal pos
        start = pos
        while pos < n and _is_token_char(s[pos]):
            pos += 1
        return s[start:pos]

    def quoted() -> str:
        nonlocal pos
        pos += 1  # opening quote
        chars = []
        while pos < n:
            c = s[pos]
            if c == "\\" and pos + 1 < n:
                chars.append(s[pos + 1])
                pos += 2
            elif c == '"':
                pos += 1
                return "".join(chars)
            else:
                chars.append(c)
                pos += 1
        return "".join(chars)

    challenges: list[Challenge] = []
    skip_space()
    scheme = token()
    while scheme:
        params: dict[str, str] = {}
        next_scheme = ""
        while True:
            skip_space()
            while pos < n and s[pos] == ",":
                pos += 1
                skip_space()
            key = token()
            if not key:
                break
            skip_space()
            if pos < n and s[pos] == "=":
                pos += 1
                skip_space()
                value = quoted() if pos < n and s[pos] == '"' else token()
                params[key.lower()] = value
            else:
                next_scheme = key  # a token without '=' starts the next challenge
                break
        challenges.append(Challenge(scheme.lower(), MappingProxyType(params)))
        scheme = next_scheme
    return challenges


@dataclass(frozen=True, slots=True)
class _Token:
    header: str
    expires_at: float


_TokenKey = tuple[str, str, frozenset[str], str]


class Authorizer:
    """Adds ``Authorization`` to registry requests and answers challenges.

    ``credentials_for(host)`` gives the credentials for a host (``host[:port]`` as contacted), or
    None. ``clock`` is monotonic seconds (a fake one in tests).
    """

    def __init__(
        self,
        credentials_for: Callable[[str], Credentials | None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials_for = credentials_for
        self._clock = clock
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[_TokenKey, _Token] = {}
        self._inflight: dict[_TokenKey, asyncio.Task[_Token]] = {}

    def credentials(self, host: str) -> Credentials | None:
        return self._credentials_for(host) if self._credentials_for else None

    async def authorization(
        self,
        host: str,
        scopes: frozenset[str],
        client: httpx.AsyncClient,
        *,
        headers: Mapping[str, str | tuple[str, ...]] | None = None,
    ) -> str | None:
        """The ``Authorization`` value for a request to ``host`` needing ``scopes``, or None when
        the host has not asked for any. May fetch a token (through ``client``)."""
        creds = self.credentials(host)
        if creds and creds.registry_token:
            return f"Bearer {creds.registry_token}"
        challenge = self._challenges.get(host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if creds and creds.has_password:
                pair = f"{creds.username}:{creds.password}".encode()
                return "Basic " + base64.b64encode(pair).decode()
            return None
        wanted = scopes or challenge.scopes
        key = (challenge.realm, challenge.service, wanted, creds.username if creds else "")
        token = self._tokens.get(key)
        if token is not None and token.expires_at > self._clock():
            return token.header
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(
                self._fetch(key, host, challenge, wanted, creds, client, headers or {})
            )
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._settle, key))
        # shield: one caller being cancelled must not cancel the fetch the others wait for.
        return (await asyncio.shield(task)).header

    def handle_challenge(self, host: str, response: httpx.Response, *, sent: str | None) -> bool:
        """Record the challenge in a 401 ``response`` from ``host``; True when retrying the request
        with :meth:`authorization` may succeed (``sent`` is the Authorization that was refused)."""
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        bearer = [c for c in challenges if c.scheme == "bearer"]
        basic = [c for c in challenges if c.scheme == "basic"]
        creds = self.credentials(host)
        if sent:
            self._tokens = {k: t for k, t in self._tokens.items() if t.header != sent}
        if creds and creds.registry_token:
            return False  # the token we were given is all we have
        if bearer:
            if not bearer[0].realm:
                return False
            self._challenges[host] = bearer[0]
            return True
        if basic:
            self._challenges[host] = basic[0]
            if not (creds and creds.has_password):
                return False
            return not (sent and sent.startswith("Basic "))
        return False

    def _settle(self, key: _TokenKey, task: asyncio.Task[_Token]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have been cancelled

    async def _fetch(
        self,
        key: _TokenKey,
        host: str,
        challenge: Challenge,
        scopes: frozenset[str],
        creds: Credentials | None,
        client: httpx.AsyncClient,
        headers: Mapping[str, str | tuple[str, ...]],
    ) -> _Token:
        realm = challenge.realm
        if urlsplit(realm).scheme not in ("http", "https"):
            raise Unauthenticated(
                f"registry {host} sent a Bearer challenge with a bad realm {realm!r}"
            )
        pairs = [
            (name, item)
            for name, value in headers.items()
            for item in ((value,) if isinstance(value, str) else value)
        ]
        base_headers = httpx.Headers(pairs)
        scope_list = sorted(scopes)
        try:
            if creds and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "service": challenge.service,
                    "client_id": CLIENT_ID,
                }
                if scope_list:
                    form["scope"] = " ".join(scope_list)
                response = await client.post(realm, data=form, headers=base_headers)
                if response.status_code in (404, 405):
                    response = await self._get(
                        client,
                        realm,
                        challenge,
                        scope_list,
                        base_headers,
                        ("", creds.identity_token),
                    )
            else:
                basic = (creds.username, creds.password) if creds and creds.has_password else None
                response = await self._get(
                    client, realm, challenge, scope_list, base_headers, basic
                )
        except httpx.TransportError as exc:
            where = f"{host} (token server {urlsplit(realm).netloc})"
            raise registry_error(exc, host=where, kind="token", subject=realm) from exc
        token = self._token_from(response, host, realm, scope_list, creds)
        self._tokens[key] = token
        return token

    async def _get(
        self,
        client: httpx.AsyncClient,
        realm: str,
        challenge: Challenge,
        scopes: list[str],
        headers: httpx.Headers,
        basic: tuple[str, str] | None,
    ) -> httpx.Response:
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params += [("scope", s) for s in scopes]
        request_headers = httpx.Headers(headers)
        if basic is not None:
            pair = f"{basic[0]}:{basic[1]}".encode()
            request_headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return await client.get(realm, params=params, headers=request_headers)

    def _token_from(
        self,
        response: httpx.Response,
        host: str,
        realm: str,
        scopes: list[str],
        creds: Credentials | None,
    ) -> _Token:
        if response.status_code == 401:
            who = "the credentials were rejected" if creds else "an anonymous token was refused"
            raise Unauthenticated(
                f"registry {host}: token server {realm} refused access to "
                f"{' '.join(scopes) or 'the registry'}: {who}"
            )
        if response.status_code >= 300:
            raise registry_error(
                response.status_code,
                host=f"{host} (token server {urlsplit(realm).netloc})",
                kind="token for",
                subject=" ".join(scopes) or "the registry",
                body=response.content,
                had_credentials=creds is not None,
            )
        try:
            doc = response.json()
        except ValueError:
            doc = None
        value = ""
        lifetime = DEFAULT_TOKEN_LIFETIME
        if isinstance(doc, dict):
            value = str(doc.get("access_token") or doc.get("token") or "")
            expires_in = doc.get("expires_in")
            if isinstance(expires_in, int | float) and expires_in > 0:
                lifetime = float(expires_in)
        if not value:
            raise RegistryUnavailable(
                f"registry {host}: token server {realm} answered without a token"
            )
        return _Token(f"Bearer {value}", self._clock() + lifetime)
