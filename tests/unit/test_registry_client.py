"""RegistryClient against an in-memory registry behind httpx.MockTransport (a transport double:
the HTTP peer is fake, every line of our client runs for real)."""

from __future__ import annotations

import base64
import io
import json
import socket
import ssl
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from runtime import ocispec
from runtime.distribution.auth import Credentials, credentials_for_registry
from runtime.distribution.client import RegistryClient
from runtime.distribution.reference import parse_reference
from runtime.errors import (
    DigestMismatch,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    RegistryUnavailable,
    Unauthenticated,
    Unavailable,
)
from tests.support.fake_registry import FakeRegistry, digest, streamed

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": ocispec.OCI_MANIFEST,
        "config": {"mediaType": ocispec.OCI_CONFIG, "digest": "sha256:" + "a" * 64, "size": 2},
        "layers": [],
    }
).encode()
BLOB = bytes(range(256)) * 12288  # 3 MiB
SMALL = b"hello, layer"


def client_for(
    handler: Callable[[httpx.Request], httpx.Response],
    hosts_dir: Path | None = None,
    credentials: Credentials | None = None,
    registry: str = "r.example",
) -> RegistryClient:
    return RegistryClient(
        hosts_dir,
        credentials_for=credentials_for_registry(registry, credentials) if credentials else None,
        user_agent="pinnace-test",
        transport=httpx.MockTransport(handler),
    )


REF = parse_reference("r.example/app:v1")


def blob_desc(data: bytes) -> ocispec.Descriptor:
    return ocispec.Descriptor(ocispec.OCI_LAYER_GZIP, digest(data), len(data))


async def collect(client: RegistryClient, desc: ocispec.Descriptor, offset: int = 0) -> list[bytes]:
    async with aclosing(client.fetch_blob(REF, desc, offset=offset)) as chunks:
        return [c async for c in chunks]


async def test_resolve_by_tag_with_head() -> None:
    reg = FakeRegistry()
    d = reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    async with client_for(reg) as client:
        name, desc = await client.resolve(REF)
    assert name == "r.example/app:v1"
    assert desc == ocispec.Descriptor(ocispec.OCI_MANIFEST, d, len(MANIFEST))
    [head] = reg.requests
    assert head.method == "HEAD" and str(head.url) == "https://r.example/v2/app/manifests/v1"
    accept = head.headers["accept"]
    for t in (
        ocispec.OCI_INDEX,
        ocispec.OCI_MANIFEST,
        ocispec.DOCKER_MANIFEST_LIST,
        ocispec.DOCKER_MANIFEST,
        ocispec.DOCKER_MANIFEST_SCHEMA1_SIGNED,
    ):
        assert t in accept
    assert head.headers["user-agent"] == "pinnace-test"


async def test_resolve_falls_back_to_get_without_digest_header() -> None:
    reg = FakeRegistry(head_digest=False)
    d = reg.add_manifest("v1", "application/json", MANIFEST)
    async with client_for(reg) as client:
        _, desc = await client.resolve(REF)
    assert (desc.digest, desc.size, desc.media_type) == (d, len(MANIFEST), ocispec.OCI_MANIFEST)
    assert [r.method for r in reg.requests] == ["HEAD", "GET"]


async def test_resolve_by_digest_verifies_the_body() -> None:
    reg = FakeRegistry(head_digest=False)
    reg.manifests["sha256:" + "e" * 64] = (ocispec.OCI_MANIFEST, MANIFEST)  # stored under a lie
    ref = REF.with_digest("sha256:" + "e" * 64)
    async with client_for(reg) as client:
        # HEAD with the ref's digest needs no body; the lie shows when fetching.
        _, desc = await client.resolve(ref)
        assert desc.digest == ref.digest
        with pytest.raises(DigestMismatch) as info:
            await client.fetch_manifest(ref, desc)
    assert ref.digest in str(info.value) and digest(MANIFEST) in str(info.value)


async def test_fetch_manifest_verifies_digest_and_size() -> None:
    reg = FakeRegistry()
    d = reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    async with client_for(reg) as client:
        desc = ocispec.Descriptor(ocispec.OCI_MANIFEST, d, len(MANIFEST))
        assert await client.fetch_manifest(REF, desc) == MANIFEST
        reg.manifests[d] = (ocispec.OCI_MANIFEST, MANIFEST + b" ")
        with pytest.raises(DigestMismatch, match=d):
            await client.fetch_manifest(REF, desc)


@pytest.mark.parametrize(
    "media_type", [ocispec.DOCKER_MANIFEST_SCHEMA1_SIGNED, ocispec.DOCKER_MANIFEST_SCHEMA1]
)
async def test_schema1_is_detected_and_refused(media_type: str) -> None:
    reg = FakeRegistry()
    reg.add_manifest("v1", media_type, json.dumps({"schemaVersion": 1, "fsLayers": []}).encode())
    async with client_for(reg) as client:
        with pytest.raises(
            FailedPrecondition,
            match=r"schema 1 manifests are not supported \(image r\.example/app:v1\)",
        ):
            await client.resolve(REF)


async def test_schema1_sniffed_from_generic_content_type() -> None:
    reg = FakeRegistry()
    reg.add_manifest(
        "v1", "application/json", json.dumps({"schemaVersion": 1, "fsLayers": []}).encode()
    )
    async with client_for(reg) as client:
        with pytest.raises(FailedPrecondition, match="schema 1"):
            await client.resolve(REF)


async def test_bearer_challenge_token_retry_and_reuse() -> None:
    reg = FakeRegistry(auth="bearer")
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    reg.blobs[digest(SMALL)] = SMALL
    reg.blobs[digest(BLOB)] = BLOB
    async with client_for(reg) as client:
        await client.resolve(REF)
        assert b"".join(await collect(client, blob_desc(SMALL))) == SMALL
        assert b"".join(await collect(client, blob_desc(BLOB))) == BLOB
    # One token for the whole pull: the 401, then every request carries it.
    assert len(reg.token_requests) == 1
    q = parse_qs(reg.token_requests[0].url.query.decode())
    assert q == {"service": ["reg"], "scope": ["repository:app:pull"]}
    statuses = [r.headers.get("authorization") for r in reg.requests]
    assert statuses == [None, "Bearer tok1", "Bearer tok1", "Bearer tok1"]


async def test_bearer_with_password_credentials_and_rejection() -> None:
    reg = FakeRegistry(auth="bearer")
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    async with client_for(reg, credentials=Credentials("alice", "pw")) as client:
        await client.resolve(REF)
    assert reg.token_requests[0].headers["authorization"].startswith("Basic ")
    async with client_for(reg, credentials=Credentials("alice", "nope")) as client:
        with pytest.raises(Unauthenticated, match=r"r\.example.*credentials were rejected"):
            await client.resolve(REF)


async def test_basic_auth() -> None:
    reg = FakeRegistry(auth="basic")
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    async with client_for(reg, credentials=Credentials("alice", "pw")) as client:
        await client.resolve(REF)
        await client.resolve(REF)
    auths = [r.headers.get("authorization") for r in reg.requests]
    assert auths[0] is None and auths[1:] == ["Basic " + base64.b64encode(b"alice:pw").decode()] * 2
    async with client_for(reg) as client:
        with pytest.raises(Unauthenticated, match="no credentials were given"):
            await client.resolve(REF)
    async with client_for(reg, credentials=Credentials("alice", "bad")) as client:
        with pytest.raises(Unauthenticated, match="credentials were rejected"):
            await client.resolve(REF)


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (401, Unauthenticated, "refused manifest r.example/app:v1"),
        (403, PermissionDenied, "denied access to manifest r.example/app:v1"),
        (404, NotFound, "manifest unknown: r.example/app:v1"),
        (500, Unavailable, "failed serving manifest"),
        (503, Unavailable, "failed serving manifest"),
        (429, Unavailable, "rate limiting"),
    ],
)
async def test_status_mapping(status: int, error: type, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"errors": [{"code": "CODE_X", "message": "said so"}]})

    async with client_for(handler) as client:
        with pytest.raises(error) as info:
            await client.resolve(REF)
    assert message in str(info.value)
    if status in (429, 500, 503):
        assert not isinstance(info.value, RegistryUnavailable)


async def test_registry_error_body_is_included() -> None:
    reg = FakeRegistry()
    async with client_for(reg) as client:
        with pytest.raises(NotFound) as info:
            await client.fetch_manifest(REF, blob_desc(MANIFEST))
    assert "manifest unknown: " in str(info.value) and "MANIFEST_UNKNOWN: manifest unknown" in str(
        info.value
    )


async def test_server_errors_are_retried_once() -> None:
    reg = FakeRegistry(fail_next=[503])
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    async with client_for(reg) as client:
        await client.resolve(REF)
    assert len(reg.requests) == 2
    reg = FakeRegistry(fail_next=[502, 502, 200])
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    async with client_for(reg) as client:
        with pytest.raises(Unavailable, match="502"):
            await client.resolve(REF)
    assert len(reg.requests) == 2


async def test_connect_failure_is_registry_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    async with client_for(refuse) as client:
        with pytest.raises(RegistryUnavailable) as info:
            await client.resolve(REF)
    assert str(info.value).startswith("RegistryUnavailable: cannot reach registry r.example")
    assert "Connection refused" in str(info.value)


async def test_timeout_is_registry_unavailable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with client_for(slow) as client:
        with pytest.raises(RegistryUnavailable, match="timed out"):
            await client.resolve(REF)


def write_hosts(root: Path, registry: str, text: str) -> Path:
    (root / registry).mkdir(parents=True, exist_ok=True)
    (root / registry / "hosts.toml").write_text(text)
    return root


MIRRORS = """
server = "https://r.example"
[host."https://down.mirror"]
  capabilities = ["pull", "resolve"]
[host."https://empty.mirror"]
  capabilities = ["pull", "resolve"]
  [host."https://empty.mirror".header]
    x-mirror-key = "k1"
"""


async def test_mirrors_fall_through_to_upstream(tmp_path: Path) -> None:
    reg = FakeRegistry()
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "down.mirror":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.url.host == "empty.mirror":
            return httpx.Response(404)
        return reg(request)

    async with client_for(handler, write_hosts(tmp_path, "r.example", MIRRORS)) as client:
        _, desc = await client.resolve(REF)
    assert desc.digest == digest(MANIFEST)
    assert [r.url.host for r in seen] == ["down.mirror", "empty.mirror", "r.example"]
    # Mirrors learn which registry is meant; the registry itself does not need telling.
    assert seen[1].url.params["ns"] == "r.example" and "ns" not in seen[2].url.params
    assert seen[1].headers["x-mirror-key"] == "k1" and "x-mirror-key" not in seen[2].headers


async def test_all_hosts_failing_names_each(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.mirror":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(404)

    async with client_for(handler, write_hosts(tmp_path, "r.example", MIRRORS)) as client:
        with pytest.raises(NotFound) as info:
            await client.resolve(REF)
    text = str(info.value)
    assert text.startswith("manifest unknown: r.example/app:v1")
    assert "down.mirror: cannot reach registry down.mirror" in text
    assert "empty.mirror: manifest unknown" in text


async def test_capabilities_choose_hosts(tmp_path: Path) -> None:
    text = """
server = "https://r.example"
[host."https://pull-only.mirror"]
  capabilities = ["pull"]
"""
    reg = FakeRegistry()
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    reg.blobs[digest(SMALL)] = SMALL
    async with client_for(reg, write_hosts(tmp_path, "r.example", text)) as client:
        await client.resolve(REF)  # resolve skips the pull-only mirror
        assert [r.url.host for r in reg.requests] == ["r.example"]
        await collect(client, blob_desc(SMALL))
        assert reg.requests[-1].url.host == "pull-only.mirror"


async def test_override_path(tmp_path: Path) -> None:
    text = 'server = "https://r.example/custom/root"\noverride_path = true\n'
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(404)

    async with client_for(handler, write_hosts(tmp_path, "r.example", text)) as client:
        with pytest.raises(NotFound):
            await client.resolve(REF)
    assert seen == ["/custom/root/app/manifests/v1"]


async def test_blob_chunks_pass_through_as_received() -> None:
    # not cut again to a fixed size (a copy of every byte on the event loop); the socket
    # read size (httpcore's, raised to 1 MiB in transport.py) decides how large they are
    reg = FakeRegistry()
    reg.blobs[digest(BLOB)] = BLOB
    async with client_for(reg) as client:
        chunks = await collect(client, blob_desc(BLOB))
    assert b"".join(chunks) == BLOB
    assert [len(c) for c in chunks] == [64 * 1024] * (len(BLOB) // (64 * 1024))
    assert reg.requests[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("honour_range", [True, False])
async def test_blob_resume_from_offset(honour_range: bool) -> None:
    reg = FakeRegistry(honour_range=honour_range)
    reg.blobs[digest(BLOB)] = BLOB
    offset = 1_000_003
    async with client_for(reg) as client:
        got = b"".join(await collect(client, blob_desc(BLOB), offset=offset))
        assert got == BLOB[offset:]
        assert reg.requests[0].headers["range"] == f"bytes={offset}-"
        assert b"".join(await collect(client, blob_desc(BLOB), offset=len(BLOB))) == b""


async def test_blob_redirect_is_followed_without_credentials() -> None:
    reg = FakeRegistry(auth="bearer")
    storage: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.example":
            storage.append(request)
            return httpx.Response(200, content=streamed(SMALL))
        if reg.authorised(request) is None and "/blobs/" in request.url.path:
            reg.requests.append(request)
            return httpx.Response(307, headers={"Location": "https://storage.example/b?sig=1"})
        return reg(request)

    async with client_for(handler) as client:
        assert b"".join(await collect(client, blob_desc(SMALL))) == SMALL
    [got] = storage
    assert "authorization" not in got.headers


async def test_blob_unknown() -> None:
    async with client_for(FakeRegistry()) as client:
        with pytest.raises(NotFound, match=f"blob unknown: {digest(SMALL)}.*BLOB_UNKNOWN"):
            await collect(client, blob_desc(SMALL))


async def test_https_falls_back_to_http_for_loopback() -> None:
    reg = FakeRegistry()
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    schemes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        schemes.append(request.url.scheme)
        if request.url.scheme == "https":
            try:
                raise ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
            except ssl.SSLError as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
        return reg(request)

    ref = parse_reference("localhost:5000/app:v1")
    async with client_for(handler, registry="localhost:5000") as client:
        await client.resolve(ref)
        await client.resolve(ref)
    assert schemes == ["https", "http", "http"]


async def test_tls_failure_without_fallback_is_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed")
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    async with client_for(handler) as client:
        with pytest.raises(RegistryUnavailable, match=r"TLS handshake failed.*self-signed"):
            await client.resolve(REF)


async def test_push_blob_monolithic_and_skip_existing() -> None:
    reg = FakeRegistry(auth="bearer")
    desc = blob_desc(SMALL)
    opened: list[int] = []

    def open_reader() -> io.BytesIO:
        opened.append(1)
        return io.BytesIO(SMALL)

    async with client_for(reg) as client:
        await client.push_blob(REF, desc, open_reader)
        assert reg.blobs[desc.digest] == SMALL
        methods = [(r.method, r.url.path) for r in reg.requests if r.headers.get("authorization")]
        assert methods == [
            ("HEAD", f"/v2/app/blobs/{desc.digest}"),
            ("POST", "/v2/app/blobs/uploads/"),
            ("PUT", "/v2/app/blobs/uploads/u1"),
        ]
        put = reg.requests[-1]
        assert put.headers["content-length"] == str(len(SMALL))
        assert parse_qs(reg.token_requests[0].url.query.decode())["scope"] == [
            "repository:app:pull,push"
        ]
        count = len(reg.requests)
        await client.push_blob(REF, desc, open_reader)  # present: one HEAD, nothing uploaded
        assert len(reg.requests) == count + 1 and reg.requests[-1].method == "HEAD"
    assert len(opened) == 1


async def test_push_manifest_returns_digest() -> None:
    reg = FakeRegistry()
    async with client_for(reg) as client:
        d = await client.push_manifest(REF, ocispec.OCI_MANIFEST, MANIFEST, tag_or_digest="v2")
        assert d == digest(MANIFEST)
        assert reg.manifests["v2"] == (ocispec.OCI_MANIFEST, MANIFEST)
        _, desc = await client.resolve(REF.with_tag("v2"))
        assert desc.digest == d


async def test_with_credentials_shares_pools() -> None:
    reg = FakeRegistry(auth="basic")
    reg.add_manifest("v1", ocispec.OCI_MANIFEST, MANIFEST)
    async with client_for(reg) as root:
        child = root.with_credentials(
            credentials_for_registry("r.example", Credentials("alice", "pw"))
        )
        await child.resolve(REF)
        await child.aclose()
        await child.resolve(REF)  # the pool is the root's, still open
        with pytest.raises(Unauthenticated):
            await root.resolve(REF)


def test_a_missing_sniffio_is_not_searched_for_on_every_request() -> None:
    # httpcore imports sniffio inside a function it calls per request; a failing import is
    # not cached by Python, so each one searched sys.path again
    import importlib.util
    import sys

    from runtime.distribution.transport import load_http_stack

    if importlib.util.find_spec("sniffio") is not None:
        pytest.skip("sniffio is installed: httpcore imports it normally")
    load_http_stack()
    assert sys.modules["sniffio"] is None
    with pytest.raises(ImportError):
        import sniffio  # noqa: F401


def test_a_host_name_that_does_not_resolve_is_said_in_words() -> None:
    from runtime.distribution.failures import registry_error

    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        error = registry_error(exc, host="nosuch.invalid", kind="manifest", subject="x:1")
    assert isinstance(error, RegistryUnavailable)
    assert str(error) == (
        "RegistryUnavailable: cannot reach registry nosuch.invalid: cannot resolve its host name"
        " (Name or service not known)"
    )
