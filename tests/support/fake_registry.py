"""A registry in memory for httpx.MockTransport (a transport double, not a mock of pinnace):
one repository (``app``) with manifests by tag and digest, blobs (served in network-sized
pieces, ranges honoured), monolithic uploads, and Bearer or Basic auth.

    registry = FakeRegistry()
    client = RegistryClient(None, user_agent="t", transport=httpx.MockTransport(registry))
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

__all__ = ["FakeRegistry", "digest", "streamed"]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def streamed(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body that arrives in network-sized pieces, as from a socket."""
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


@dataclass
class FakeRegistry:
    """A registry for one repository: manifests by tag and digest, blobs, uploads, auth."""

    auth: str = ""  # "", "bearer" or "basic"
    users: dict[str, str] = field(default_factory=lambda: {"alice": "pw"})
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    head_digest: bool = True
    honour_range: bool = True
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[httpx.Request] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)

    def add_manifest(self, tag: str, media_type: str, data: bytes) -> str:
        self.manifests[tag] = self.manifests[digest(data)] = (media_type, data)
        return digest(data)

    def token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        header = request.headers.get("authorization")
        if header:
            user, _, pw = base64.b64decode(header.split()[1]).decode().partition(":")
            if self.users.get(user) != pw:
                return httpx.Response(401)
        return httpx.Response(200, json={"token": f"tok{len(self.token_requests)}"})

    def authorised(self, request: httpx.Request) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        if self.auth == "bearer":
            if re.fullmatch(r"Bearer tok\d+", header):
                return None
            scope = "repository:app:pull"
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": f'Bearer realm="https://auth.example/token",'
                    f'service="reg",scope="{scope}"'
                },
                json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            )
        if self.auth == "basic":
            ok = [
                f"Basic {base64.b64encode(f'{u}:{p}'.encode()).decode()}"
                for u, p in self.users.items()
            ]
            if header in ok:
                return None
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
        return None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            return self.token(request)
        self.requests.append(request)
        if self.fail_next:
            return httpx.Response(self.fail_next.pop(0))
        denied = self.authorised(request)
        if denied is not None:
            return denied
        path = request.url.path
        if m := re.fullmatch(r"/v2/app/manifests/(.+)", path):
            return self.manifest(request, m.group(1))
        if m := re.fullmatch(r"/v2/app/blobs/(sha256:[0-9a-f]+)", path):
            return self.blob(request, m.group(1))
        if path == "/v2/app/blobs/uploads/" and request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/app/blobs/uploads/u1?_state=s"})
        if path == "/v2/app/blobs/uploads/u1" and request.method == "PUT":
            q = parse_qs(request.url.query.decode())
            assert q["_state"] == ["s"]
            data = request.read()
            if digest(data) != q["digest"][0]:
                return httpx.Response(
                    400, json={"errors": [{"code": "DIGEST_INVALID", "message": "x"}]}
                )
            self.blobs[q["digest"][0]] = data
            return httpx.Response(201)
        return httpx.Response(404)

    def manifest(self, request: httpx.Request, obj: str) -> httpx.Response:
        if request.method == "PUT":
            data = request.read()
            self.add_manifest(obj, request.headers["content-type"], data)
            return httpx.Response(201, headers={"Docker-Content-Digest": digest(data)})
        if obj not in self.manifests:
            return httpx.Response(
                404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            )
        media_type, data = self.manifests[obj]
        headers = {"Content-Type": media_type, "Content-Length": str(len(data))}
        if self.head_digest:
            headers["Docker-Content-Digest"] = digest(data)
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, headers=headers, content=data)

    def blob(self, request: httpx.Request, d: str) -> httpx.Response:
        if d not in self.blobs:
            return httpx.Response(
                404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}
            )
        data = self.blobs[d]
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Length": str(len(data))})
        rng = request.headers.get("range")
        if rng and self.honour_range:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            return httpx.Response(
                206,
                headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
                content=streamed(data[start:]),
            )
        return httpx.Response(200, content=streamed(data))
