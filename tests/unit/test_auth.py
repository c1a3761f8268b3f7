"""Credentials, WWW-Authenticate parsing and the token dance (httpx.MockTransport as the peer)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from runtime.distribution.auth import (
    Authorizer,
    Credentials,
    credentials_for_registry,
    credentials_from_auth,
    parse_challenges,
)
from runtime.errors import InvalidArgument, RegistryUnavailable, Unauthenticated

PULL = frozenset({"repository:library/busybox:pull"})
REALM = "https://auth.example/token"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_from_auth() -> None:
    assert credentials_from_auth(b64("user:pa:ss")) == Credentials("user", "pa:ss")
    with pytest.raises(InvalidArgument, match="no ':'"):
        credentials_from_auth(b64("userpass"))
    with pytest.raises(InvalidArgument, match="not valid base64"):
        credentials_from_auth("***")


def test_secrets_are_not_in_repr() -> None:
    text = repr(Credentials("u", "secret-pw", "secret-id", "secret-rt"))
    assert "secret" not in text and "'u'" in text


def test_credentials_for_registry_never_gives_them_to_mirrors() -> None:
    creds = Credentials("u", "p")
    hub = credentials_for_registry("docker.io", creds)
    assert hub("registry-1.docker.io") is creds and hub("docker.io") is creds
    assert hub("mirror.example") is None
    local = credentials_for_registry("localhost:5000", creds)
    assert local("localhost:5000") is creds and local("localhost:5001") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/busybox:pull"',
            [
                (
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/busybox:pull",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
        (
            'bearer Realm="r", scope="a:b:pull,push"',
            [("bearer", {"realm": "r", "scope": "a:b:pull,push"})],
        ),
        ('Bearer realm="a \\"quoted\\" realm"', [("bearer", {"realm": 'a "quoted" realm'})]),
        ("Bearer realm=tok,service=svc", [("bearer", {"realm": "tok", "service": "svc"})]),
        (
            'Bearer realm="r1", Basic realm="r2"',
            [("bearer", {"realm": "r1"}), ("basic", {"realm": "r2"})],
        ),
        ('Bearer  ,realm="x" , ,service="y"', [("bearer", {"realm": "x", "service": "y"})]),
        ("", []),
    ],
)
def test_parse_challenges(header: str, expected: list) -> None:
    got = [(c.scheme, dict(c.params)) for c in parse_challenges(header)]
    assert got == expected


def test_challenge_scopes() -> None:
    [c] = parse_challenges('Bearer realm="r",scope="a:b:pull b:c:push"')
    assert c.scopes == frozenset({"a:b:pull", "b:c:push"}) and c.realm == "r" and c.service == ""


class TokenServer:
    """A token endpoint double recording requests; ``answer`` decides the response."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (
            lambda r: httpx.Response(200, json={"token": f"t{len(self.requests)}"})
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def challenge_response(header: str) -> httpx.Response:
    return httpx.Response(401, headers={"WWW-Authenticate": header})


BEARER = f'Bearer realm="{REALM}",service="svc",scope="repository:library/busybox:pull"'


async def test_anonymous_token_fetch_and_cache() -> None:
    server = TokenServer()
    now = [100.0]
    auth = Authorizer(None, clock=lambda: now[0])
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        assert await auth.authorization("r.example", PULL, client) is None
        assert auth.handle_challenge("r.example", challenge_response(BEARER), sent=None)
        assert await auth.authorization("r.example", PULL, client) == "Bearer t1"
        assert await auth.authorization("r.example", PULL, client) == "Bearer t1"
        assert len(server.requests) == 1
        req = server.requests[0]
        assert req.method == "GET" and "authorization" not in req.headers
        assert parse_qs(req.url.query.decode()) == {
            "service": ["svc"],
            "scope": ["repository:library/busybox:pull"],
        }
        now[0] += 61  # the default lifetime is 60 s
        assert await auth.authorization("r.example", PULL, client) == "Bearer t2"
        # Another scope is another token.
        other = frozenset({"repository:x/y:pull,push"})
        assert await auth.authorization("r.example", other, client) == "Bearer t3"
        assert parse_qs(server.requests[2].url.query.decode())["scope"] == [
            "repository:x/y:pull,push"
        ]


async def test_expires_in_and_access_token() -> None:
    server = TokenServer(
        lambda r: httpx.Response(200, json={"access_token": "acc", "expires_in": 300})
    )
    now = [0.0]
    auth = Authorizer(None, clock=lambda: now[0])
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth.handle_challenge("h", challenge_response(BEARER), sent=None)
        assert await auth.authorization("h", PULL, client) == "Bearer acc"
        now[0] = 299
        await auth.authorization("h", PULL, client)
        assert len(server.requests) == 1
        now[0] = 301
        await auth.authorization("h", PULL, client)
        assert len(server.requests) == 2


async def test_password_uses_basic_on_get() -> None:
    server = TokenServer()
    auth = Authorizer(lambda host: Credentials("alice", "pw"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth.handle_challenge("h", challenge_response(BEARER), sent=None)
        await auth.authorization("h", PULL, client)
    assert server.requests[0].headers["authorization"] == "Basic " + b64("alice:pw")


async def test_identity_token_posts_refresh_grant() -> None:
    server = TokenServer(lambda r: httpx.Response(200, json={"access_token": "oauth"}))
    auth = Authorizer(lambda host: Credentials(identity_token="refresh-me"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth.handle_challenge("h", challenge_response(BEARER), sent=None)
        assert await auth.authorization("h", PULL, client) == "Bearer oauth"
    [req] = server.requests
    assert req.method == "POST"
    form = parse_qs(req.content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["refresh-me"]
    assert form["service"] == ["svc"] and form["scope"] == ["repository:library/busybox:pull"]


@pytest.mark.parametrize("status", [404, 405])
async def test_identity_token_falls_back_to_get(status: int) -> None:
    def answer(r: httpx.Request) -> httpx.Response:
        if r.method == "POST":
            return httpx.Response(status)
        return httpx.Response(200, json={"token": "via-get"})

    server = TokenServer(answer)
    auth = Authorizer(lambda host: Credentials(identity_token="id"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth.handle_challenge("h", challenge_response(BEARER), sent=None)
        assert await auth.authorization("h", PULL, client) == "Bearer via-get"
    assert [r.method for r in server.requests] == ["POST", "GET"]


async def test_registry_token_is_sent_directly() -> None:
    server = TokenServer()
    auth = Authorizer(lambda host: Credentials(registry_token="rt"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        assert await auth.authorization("h", PULL, client) == "Bearer rt"
        # If the registry refuses it there is nothing better to try.
        assert not auth.handle_challenge("h", challenge_response(BEARER), sent="Bearer rt")
    assert server.requests == []


async def test_basic_challenge() -> None:
    auth = Authorizer(lambda host: Credentials("bob", "secret") if host == "h" else None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(TokenServer())) as client:
        assert auth.handle_challenge("h", challenge_response('Basic realm="x"'), sent=None)
        assert await auth.authorization("h", PULL, client) == "Basic " + b64("bob:secret")
        # Refused Basic credentials: retrying cannot help.
        assert not auth.handle_challenge("h", challenge_response('Basic realm="x"'), sent="Basic x")
        # No credentials for this host: nothing to send.
        assert not auth.handle_challenge("other", challenge_response('Basic realm="x"'), sent=None)
        assert await auth.authorization("other", PULL, client) is None


async def test_refused_token_is_dropped_from_the_cache() -> None:
    server = TokenServer()
    auth = Authorizer(None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth.handle_challenge("h", challenge_response(BEARER), sent=None)
        first = await auth.authorization("h", PULL, client)
        assert auth.handle_challenge("h", challenge_response(BEARER), sent=first)
        assert await auth.authorization("h", PULL, client) == "Bearer t2"


async def test_token_endpoint_401_is_unauthenticated() -> None:
    server = TokenServer(lambda r: httpx.Response(401))
    auth = Authorizer(lambda host: Credentials("alice", "wrong"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth.handle_challenge("r.example", challenge_response(BEARER), sent=None)
        with pytest.raises(Unauthenticated) as info:
            await auth.authorization("r.example", PULL, client)
    assert "r.example" in str(info.value) and "credentials were rejected" in str(info.value)


async def test_token_endpoint_unreachable_is_registry_unavailable() -> None:
    def refuse(r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=r)

    auth = Authorizer(None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        auth.handle_challenge("r.example", challenge_response(BEARER), sent=None)
        with pytest.raises(RegistryUnavailable) as info:
            await auth.authorization("r.example", PULL, client)
    assert str(info.value).startswith("RegistryUnavailable:")
    assert "r.example" in str(info.value) and "auth.example" in str(info.value)


async def test_token_response_without_token() -> None:
    server = TokenServer(lambda r: httpx.Response(200, content=json.dumps({"nope": 1})))
    auth = Authorizer(None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth.handle_challenge("h", challenge_response(BEARER), sent=None)
        with pytest.raises(RegistryUnavailable, match="without a token"):
            await auth.authorization("h", PULL, client)


async def test_concurrent_requests_share_one_token_fetch() -> None:
    server = TokenServer()
    auth = Authorizer(None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth.handle_challenge("h", challenge_response(BEARER), sent=None)
        results = await asyncio.gather(*(auth.authorization("h", PULL, client) for _ in range(5)))
    assert set(results) == {"Bearer t1"} and len(server.requests) == 1
