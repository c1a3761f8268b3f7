"""The OCI distribution client: resolve a reference, fetch manifests and blobs, push.

Every operation asks :func:`~runtime.distribution.hosts.load_hosts` which hosts serve the
reference's registry (mirrors first), keeps those with the needed *capability* (``resolve`` to turn
a tag into a digest, ``pull`` to fetch by digest, ``push``), and tries them in order: a host that
fails (unreachable, 404, 401, 403, 429/5xx after one retry, wrong digest) hands over to the next,
and when all fail the error of the last one is raised with what each earlier host said.

A request to a host carries that host's ``hosts.toml`` headers and, after the host has challenged
once, an ``Authorization`` header from the :class:`~runtime.distribution.auth.Authorizer`. A host
that is not the registry itself (a mirror) gets ``?ns=<registry>``, as containerd sends.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from runtime import lazy, ocispec
from runtime.distribution.auth import Authorizer, Credentials
from runtime.distribution.failures import is_tls_failure, registry_error
from runtime.distribution.hosts import DOCKER_HUB, DOCKER_HUB_UPSTREAM, RegistryHost, load_hosts
from runtime.distribution.reference import Reference
from runtime.distribution.transport import ClientPool, Limits, Timeouts
from runtime.errors import (
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    PinnaceError,
    Unavailable,
)
from runtime.ocispec import GENERIC_TYPES, compute_digest, schema1_error, sniff_media_type

if TYPE_CHECKING:
    import httpx
else:  # imported with the first client (transport.load_http_stack), not at the daemon's start
    httpx = lazy.module("httpx")

T = TypeVar("T")

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
CHUNK_SIZE = 1024 * 1024
MANIFEST_ACCEPT = ", ".join(
    [
        ocispec.OCI_INDEX,
        ocispec.OCI_MANIFEST,
        ocispec.DOCKER_MANIFEST_LIST,
        ocispec.DOCKER_MANIFEST,
        # Asked for so that a schema 1 image is recognised and refused, not misread.
        ocispec.DOCKER_MANIFEST_SCHEMA1_SIGNED,
        ocispec.DOCKER_MANIFEST_SCHEMA1,
    ]
)
# Any error one host gives hands over to the next host; _Stop marks the exceptions.
_HOST_FAILURES = (PinnaceError,)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class _Stop(Exception):
    """Carries an error that no other host can change (the image itself is unusable)."""

    def __init__(self, error: PinnaceError) -> None:
        super().__init__(str(error))
        self.error = error


class RegistryClient:
    """Talks to registries for one set of credentials.

    ``hosts_dir`` is the ``certs.d``-style root of ``hosts.toml`` directories (None: defaults
    only). ``credentials_for(host)`` returns credentials for the ``host[:port]`` being contacted
    (see :func:`~runtime.distribution.auth.credentials_for_registry`). ``transport`` replaces the
    network (tests). Use as an async context manager or call :meth:`aclose`.
    """

    def __init__(
        self,
        hosts_dir: Path | None,
        *,
        credentials_for: Callable[[str], Credentials | None] | None = None,
        user_agent: str = "pinnace",
        timeouts: Timeouts = Timeouts(),
        limits: Limits = Limits(),
        transport: httpx.AsyncBaseTransport | None = None,
        chunk_size: int = CHUNK_SIZE,
        _pool: ClientPool | None = None,
    ) -> None:
        self._hosts_dir = hosts_dir
        self._owns_pool = _pool is None
        self._pool = _pool or ClientPool(
            user_agent=user_agent, timeouts=timeouts, limits=limits, transport=transport
        )
        self._auth = Authorizer(credentials_for)
        self._chunk_size = chunk_size
        # Hosts (authority) that answered HTTPS with a TLS failure and are spoken to over HTTP.
        self._plain_http: set[str] = set()

    def with_credentials(
        self, credentials_for: Callable[[str], Credentials | None] | None
    ) -> RegistryClient:
        """A client sharing this one's connection pools but authenticating with other
        credentials (one per pull request). Closing it does not close the shared pools."""
        return RegistryClient(
            self._hosts_dir,
            credentials_for=credentials_for,
            chunk_size=self._chunk_size,
            _pool=self._pool,
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_pool:
            await self._pool.aclose()

    async def hosts(self, registry: str) -> list[RegistryHost]:
        """The configured hosts for ``registry`` (re-read each time: edits apply at once)."""
        return await asyncio.to_thread(load_hosts, self._hosts_dir, registry)

    # --- operations ---------------------------------------------------------------------------

    async def resolve(self, ref: Reference) -> tuple[str, ocispec.Descriptor]:
        """The descriptor ``ref`` (tag or digest) points at, from a host with ``resolve``.
        Returns ``(str(ref), descriptor)``."""

        async def attempt(host: RegistryHost) -> ocispec.Descriptor:
            return await self._resolve_on(host, ref)

        desc = await self._over_hosts(ref, "resolve", "manifest", str(ref), attempt)
        return str(ref), desc

    async def fetch_manifest(self, ref: Reference, desc: ocispec.Descriptor) -> bytes:
        """The manifest or index ``desc`` names, verified against its digest and size."""
        if desc.size > MAX_MANIFEST_SIZE:
            raise FailedPrecondition(
                f"manifest {desc.digest} of {ref} is {desc.size} bytes; the limit is "
                f"{MAX_MANIFEST_SIZE}"
            )

        async def attempt(host: RegistryHost) -> bytes:
            url = self._url(host, ref, f"/manifests/{desc.digest}")
            accept = ", ".join(dict.fromkeys([desc.media_type, *MANIFEST_ACCEPT.split(", ")]))
            response = await self._send(
                host, "GET", url, scopes=_pull(ref), kind="manifest", subject=str(ref),
                headers={"Accept": accept}, stream=True,
            )  # fmt: skip
            data = await self._read_ok(response, host, "manifest", desc.digest, desc.size + 1)
            actual = await _digest_of(data, desc.digest)
            if actual != desc.digest:
                raise DigestMismatch(
                    expected=desc.digest, actual=actual, what=f"manifest of {ref} from {host.url}"
                )
            if len(data) != desc.size:
                raise _Stop(
                    FailedPrecondition(
                        f"manifest {desc.digest} of {ref} is {len(data)} bytes, but its "
                        f"descriptor says {desc.size}"
                    )
                )
            return data

        return await self._over_hosts(ref, "pull", "manifest", desc.digest, attempt)

    async def fetch_blob(
        self, ref: Reference, desc: ocispec.Descriptor, *, offset: int = 0
    ) -> AsyncGenerator[bytes, None]:
        """Stream blob ``desc`` from byte ``offset`` in chunks as received; unverified (the caller
        hashes while writing). Redirects (to storage) are followed; ``desc.urls`` are never
        fetched. A host that fails before the first byte hands over to the next; after it, the
        error is raised and the caller may resume with ``offset``. Use with
        ``contextlib.aclosing``."""
        if not 0 <= offset <= desc.size:
            raise InvalidArgument(
                f"offset {offset} is outside blob {desc.digest} ({desc.size} bytes)"
            )
        if offset == desc.size:
            return
        hosts = await self._hosts_with(ref, "pull")
        failures: list[tuple[RegistryHost, PinnaceError]] = []
        for host in hosts:
            url = self._url(host, ref, f"/blobs/{desc.digest}")
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                response = await self._send(
                    host, "GET", url, scopes=_pull(ref), kind="blob", subject=desc.digest,
                    headers=headers, stream=True, follow_redirects=True,
                )  # fmt: skip
            except _HOST_FAILURES as exc:
                failures.append((host, exc))
                continue
            started = False
            try:
                skip = await self._check_blob_response(response, host, desc, offset)
                # As received (up to httpcore's read size, 1 MiB: transport.py): re-chunking
                # to a fixed size would copy every byte once more on the event loop.
                async for chunk in response.aiter_raw():
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk, skip = chunk[skip:], 0
                    started = True
                    yield chunk
                return
            except httpx.TransportError as exc:
                error: PinnaceError = registry_error(
                    exc, host=host.authority, kind="blob", subject=desc.digest
                )
                if started:
                    raise error from exc
                failures.append((host, error))
            except _HOST_FAILURES as exc:
                failures.append((host, exc))
            finally:
                await response.aclose()
        raise _combine(failures)

    async def push_blob(
        self, ref: Reference, desc: ocispec.Descriptor, open_reader: Callable[[], BinaryIO]
    ) -> None:
        """Upload blob ``desc`` (monolithic: POST an upload, PUT the bytes with ``?digest=``)
        unless the registry has it. ``open_reader`` is called for each attempt; the reader is
        read and closed off the event loop."""
        scopes = _push(ref)

        async def attempt(host: RegistryHost) -> None:
            blob_url = self._url(host, ref, f"/blobs/{desc.digest}")
            head = await self._send(
                host, "HEAD", blob_url, scopes=scopes, kind="blob", subject=desc.digest
            )
            if head.status_code == 200:
                return
            if head.status_code != 404:
                raise await self._error(head, host, "blob", desc.digest)
            start = await self._send(
                host, "POST", self._url(host, ref, "/blobs/uploads/"), scopes=scopes,
                kind="upload for", subject=str(ref), headers={"Content-Length": "0"},
            )  # fmt: skip
            if start.status_code not in (201, 202):
                raise await self._error(start, host, "upload for", ref.name)
            location = start.headers.get("Location")
            if not location:
                raise FailedPrecondition(
                    f"registry {host.authority} started an upload without a Location"
                )
            put_url = start.request.url.join(location).copy_merge_params({"digest": desc.digest})
            done = await self._send(
                host, "PUT", str(put_url), scopes=scopes, kind="blob", subject=desc.digest,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(desc.size)},
                content=lambda: _read_chunks(open_reader, self._chunk_size),
            )  # fmt: skip
            if done.status_code not in (200, 201, 204):
                raise await self._error(done, host, "blob", desc.digest)

        await self._over_hosts(ref, "push", "blob", desc.digest, attempt)

    async def push_manifest(
        self, ref: Reference, media_type: str, data: bytes, *, tag_or_digest: str
    ) -> str:
        """PUT a manifest or index under a tag or its digest; returns its digest."""
        if not _TAG_RE.match(tag_or_digest):
            ocispec.validate_digest(tag_or_digest)
        digest = compute_digest(data)
        if tag_or_digest.startswith("sha") and ":" in tag_or_digest and tag_or_digest != digest:
            raise InvalidArgument(f"manifest digest is {digest}, not {tag_or_digest}")

        async def attempt(host: RegistryHost) -> str:
            url = self._url(host, ref, f"/manifests/{tag_or_digest}")
            response = await self._send(
                host, "PUT", url, scopes=_push(ref), kind="manifest", subject=str(ref),
                headers={"Content-Type": media_type}, content=lambda: data,
            )  # fmt: skip
            if response.status_code not in (200, 201, 202, 204):
                raise await self._error(response, host, "manifest", f"{ref.name}:{tag_or_digest}")
            said = response.headers.get("Docker-Content-Digest")
            if said and said != digest:
                raise DigestMismatch(expected=digest, actual=said, what=f"pushed manifest of {ref}")
            return digest

        return await self._over_hosts(ref, "push", "manifest", str(ref), attempt)

    # --- one host ----------------------------------------------------------------------------

    async def _resolve_on(self, host: RegistryHost, ref: Reference) -> ocispec.Descriptor:
        url = self._url(host, ref, f"/manifests/{ref.object}")
        headers = {"Accept": MANIFEST_ACCEPT}
        head = await self._send(
            host, "HEAD", url, scopes=_pull(ref), kind="manifest", subject=str(ref), headers=headers
        )
        if head.status_code == 200:
            media_type = _content_type(head)
            if media_type in ocispec.SCHEMA1_TYPES:
                raise _Stop(schema1_error(str(ref)))
            digest = ref.digest or head.headers.get("Docker-Content-Digest", "")
            length = head.headers.get("Content-Length", "")
            if digest and length.isdigit() and media_type not in GENERIC_TYPES:
                try:
                    return ocispec.Descriptor(media_type, digest, int(length))
                except InvalidArgument:
                    pass  # a malformed digest header: find out from the body
        elif head.status_code not in (400, 405):  # those: HEAD not supported, try GET
            raise await self._error(head, host, "manifest", str(ref))
        response = await self._send(
            host, "GET", url, scopes=_pull(ref), kind="manifest", subject=str(ref),
            headers=headers, stream=True,
        )  # fmt: skip
        data = await self._read_ok(response, host, "manifest", str(ref), MAX_MANIFEST_SIZE)
        try:
            media_type = sniff_media_type(data, _content_type(response), ref=str(ref))
        except FailedPrecondition as exc:
            raise _Stop(exc) from None
        algorithm = ref.digest.split(":", 1)[0] if ref.digest else "sha256"
        actual = await _digest_of(data, f"{algorithm}:")
        if ref.digest and actual != ref.digest:
            raise DigestMismatch(
                expected=ref.digest, actual=actual, what=f"manifest from {host.url}"
            )
        return ocispec.Descriptor(media_type, actual, len(data))

    async def _check_blob_response(
        self, response: httpx.Response, host: RegistryHost, desc: ocispec.Descriptor, offset: int
    ) -> int:
        """How many leading bytes to drop; raises for an unusable answer."""
        if response.status_code == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise Unavailable(
                    f"registry {host.authority} answered range {start} for blob {desc.digest}; "
                    f"asked for {offset}"
                )
            return 0
        if response.status_code == 200:
            return offset
        raise await self._error(response, host, "blob", desc.digest)

    async def _send(
        self,
        host: RegistryHost,
        method: str,
        url: str,
        *,
        scopes: frozenset[str],
        kind: str,
        subject: str,
        headers: dict[str, str] | None = None,
        content: Callable[[], bytes | AsyncIterator[bytes]] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """One request with its retries: after a 401 challenge once, after 429/5xx once, and over
        HTTP once if HTTPS fails at TLS on a ``fallback_http`` host. Returns the last response
        (the caller judges its status); transport failures raise RegistryUnavailable."""
        client = await self._pool.client_for(host)
        auth_retried = server_retried = False
        while True:
            target = url
            if host.authority in self._plain_http and url.startswith(f"https://{host.authority}"):
                target = "http://" + url[len("https://") :]
            authorization = await self._auth.authorization(
                host.authority, scopes, client, headers=host.headers
            )
            request_headers = httpx.Headers(
                [(name, value) for name, values in host.headers.items() for value in values]
            )
            request_headers.update(headers or {})
            if authorization:
                request_headers["Authorization"] = authorization
            request = client.build_request(
                method, target, headers=request_headers, content=content() if content else None
            )
            try:
                response = await client.send(
                    request, stream=stream, follow_redirects=follow_redirects
                )
            except httpx.TransportError as exc:
                if (
                    host.fallback_http
                    and host.authority not in self._plain_http
                    and target.startswith("https://")
                    and is_tls_failure(exc)
                ):
                    self._plain_http.add(host.authority)
                    continue
                raise registry_error(exc, host=host.authority, kind=kind, subject=subject) from exc
            status = response.status_code
            if status == 401 and not auth_retried:
                auth_retried = True
                if self._auth.handle_challenge(host.authority, response, sent=authorization):
                    await response.aclose()
                    continue
            elif (status == 429 or status >= 500) and not server_retried:
                server_retried = True
                await response.aclose()
                continue
            return response

    async def _read_ok(
        self, response: httpx.Response, host: RegistryHost, kind: str, subject: str, limit: int
    ) -> bytes:
        """The body of a 200 response, at most ``limit`` bytes; the mapped error otherwise."""
        if response.status_code != 200:
            raise await self._error(response, host, kind, subject)
        chunks, total = [], 0
        try:
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > limit:
                    break
                chunks.append(chunk)
        except httpx.TransportError as exc:
            raise registry_error(exc, host=host.authority, kind=kind, subject=subject) from exc
        finally:
            await response.aclose()
        if total > limit and limit >= MAX_MANIFEST_SIZE:
            raise _Stop(
                FailedPrecondition(
                    f"{kind} {subject} from {host.authority} is larger than "
                    f"{MAX_MANIFEST_SIZE} bytes"
                )
            )
        return b"".join(chunks)[:limit]

    async def _error(
        self, response: httpx.Response, host: RegistryHost, kind: str, subject: str
    ) -> PinnaceError:
        try:
            body = await response.aread() if response.request.method != "HEAD" else b""
        except httpx.HTTPError:
            body = b""
        finally:
            await response.aclose()
        return registry_error(
            response.status_code, host=host.authority, kind=kind, subject=subject, body=body,
            had_credentials=self._auth.credentials(host.authority) is not None,
        )  # fmt: skip

    # --- hosts ----------------------------------------------------------------------------------

    async def _hosts_with(self, ref: Reference, capability: str) -> list[RegistryHost]:
        hosts = [h for h in await self.hosts(ref.domain) if capability in h.capabilities]
        if not hosts:
            raise FailedPrecondition(
                f"no host configured for registry {ref.domain} has the {capability!r} capability"
            )
        return hosts

    async def _over_hosts(
        self,
        ref: Reference,
        capability: str,
        kind: str,
        subject: str,
        attempt: Callable[[RegistryHost], Awaitable[T]],
    ) -> T:
        failures: list[tuple[RegistryHost, PinnaceError]] = []
        for host in await self._hosts_with(ref, capability):
            try:
                return await attempt(host)
            except _Stop as stop:
                raise stop.error from None
            except _HOST_FAILURES as exc:
                failures.append((host, exc))
        raise _combine(failures)

    def _url(self, host: RegistryHost, ref: Reference, suffix: str) -> str:
        url = f"{host.url}{host.path_prefix}/{ref.path}{suffix}"
        if host.authority != ref.domain and not (
            ref.domain == DOCKER_HUB and host.authority == DOCKER_HUB_UPSTREAM
        ):
            url += f"?ns={ref.domain}"
        return url


def _combine(failures: list[tuple[RegistryHost, PinnaceError]]) -> PinnaceError:
    """One error for a request every host failed: the most telling one (a host that answered
    beats a host that could not be reached; among equals, the last), its message extended with
    what the other hosts said."""
    answered = [i for i, (_, exc) in enumerate(failures) if not isinstance(exc, Unavailable)]
    chosen = answered[-1] if answered else len(failures) - 1
    main = failures[chosen][1]
    if len(failures) == 1:
        return main
    others = "; ".join(
        f"{host.authority}: {str(exc).removeprefix('RegistryUnavailable: ')}"
        for i, (host, exc) in enumerate(failures)
        if i != chosen
    )
    if isinstance(main, DigestMismatch):
        main.add_note(f"other hosts: {others}")
        return main
    combined = type(main)(f"{main} [other hosts: {others}]")
    combined.__cause__ = main
    return combined


def _pull(ref: Reference) -> frozenset[str]:
    return frozenset({f"repository:{ref.path}:pull"})


def _push(ref: Reference) -> frozenset[str]:
    return frozenset({f"repository:{ref.path}:pull,push"})


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _range_start(content_range: str) -> int:
    match = re.match(r"bytes (\d+)-", content_range.strip())
    return int(match.group(1)) if match else -1


async def _digest_of(data: bytes, like: str) -> str:
    """The digest of ``data`` with the algorithm of digest ``like``; big bodies off the loop."""
    algorithm = like.split(":", 1)[0] or "sha256"
    if len(data) > 256 * 1024:
        return await asyncio.to_thread(compute_digest, data, algorithm)
    return compute_digest(data, algorithm)


async def _read_chunks(open_reader: Callable[[], BinaryIO], size: int) -> AsyncIterator[bytes]:
    reader = await asyncio.to_thread(open_reader)
    try:
        while data := await asyncio.to_thread(reader.read, size):
            yield data
    finally:
        with suppress(OSError):
            await asyncio.to_thread(reader.close)
