"""A minimal, independent OCI distribution pusher (httpx) for putting test images in a registry.

It deliberately shares nothing with pinnace's registry client: a harness that used the code under
test to set up its fixtures would prove nothing.

Protocol (distribution spec, "push"):
  HEAD /v2/<repo>/blobs/<digest>             200 means present: skip the upload
  POST /v2/<repo>/blobs/uploads/             202 with Location: the upload session
  PUT  <Location>&digest=<digest>            the whole blob in one request (monolithic)
  PUT  /v2/<repo>/manifests/<tag|digest>     body = manifest, Content-Type = its media type

Auth: :class:`RegistryAuth` answers a ``401`` challenge: ``Basic`` sends the credentials;
``Bearer`` fetches a token from the challenge's realm (service and scope from the challenge,
credentials as Basic) and retries with it.
"""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Generator
from pathlib import Path
from urllib.parse import urlencode, urljoin

import httpx

from tests.support.images import Image, ImageIndex

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``Bearer realm="...",service="...",scope="..."`` into ("bearer", {params})."""
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


class RegistryAuth(httpx.Auth):
    """Answers Basic and Bearer challenges with one username/password; caches tokens by scope.

    After the first challenge it authenticates requests up front (Basic, or the last token), so
    a streamed upload body, which cannot be sent twice, is normally sent only once.
    """

    requires_response_body = True

    def __init__(self, username: str, password: str) -> None:
        secret = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._basic_header = f"Basic {secret}"
        self._tokens: dict[str, str] = {}
        self._scheme = ""
        self._last_token = ""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._scheme == "basic":
            request.headers["Authorization"] = self._basic_header
        elif self._last_token:
            request.headers["Authorization"] = f"Bearer {self._last_token}"
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self._scheme == "basic":
                return  # our credentials were refused
            self._scheme = "basic"
            request.headers["Authorization"] = self._basic_header
            yield request
            return
        if scheme != "bearer":
            return
        scope = params.get("scope", "")
        token = self._tokens.get(scope)
        if token is None:
            query = {"service": params.get("service", "")}
            if scope:
                query["scope"] = scope
            token_request = httpx.Request("GET", f"{params['realm']}?{urlencode(query)}")
            token_request.headers["Authorization"] = self._basic_header
            token_response = yield token_request
            token_response.raise_for_status()
            body = token_response.json()
            token = body.get("token") or body["access_token"]
            self._tokens[scope] = token
        self._last_token = token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def registry_client(
    base_url: str, *, auth: httpx.Auth | None = None, ca: Path | None = None
) -> httpx.Client:
    """An httpx client for ``base_url`` trusting ``ca`` (a PEM file) when given."""
    verify: ssl.SSLContext | bool = True
    if ca is not None:
        verify = ssl.create_default_context(cafile=str(ca))
    return httpx.Client(base_url=base_url, auth=auth, verify=verify, timeout=120)


def _push_blob(client: httpx.Client, repo: str, blob_digest: str, body: object, size: int) -> None:
    head = client.head(f"/v2/{repo}/blobs/{blob_digest}")
    if head.status_code == 200:
        return
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    if start.status_code != 202:
        raise RuntimeError(f"upload start for {repo}: {start.status_code} {start.text}")
    location = urljoin(str(client.base_url), start.headers["Location"])
    separator = "&" if "?" in location else "?"
    put = client.put(
        f"{location}{separator}{urlencode({'digest': blob_digest})}",
        content=body,  # type: ignore[arg-type]
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )
    if put.status_code != 201:
        raise RuntimeError(f"upload of {blob_digest} to {repo}: {put.status_code} {put.text}")


def _push_manifest(
    client: httpx.Client, repo: str, reference: str, media_type: str, data: bytes
) -> str:
    put = client.put(
        f"/v2/{repo}/manifests/{reference}",
        content=data,
        headers={"Content-Type": media_type},
    )
    if put.status_code != 201:
        raise RuntimeError(f"manifest PUT {repo}:{reference}: {put.status_code} {put.text}")
    return put.headers.get("Docker-Content-Digest", "")


def _push_one(client: httpx.Client, repo: str, reference: str, image: Image) -> None:
    for blob in image.blobs():
        body = blob.data if blob.data is not None else blob.chunks()
        _push_blob(client, repo, blob.digest, body, blob.size)
    _push_manifest(client, repo, reference, image.manifest.media_type, image.manifest.read())


def push_image(
    registry_url: str,
    repo: str,
    tag: str,
    image: Image | ImageIndex,
    *,
    auth: httpx.Auth | None = None,
    ca: Path | None = None,
) -> str:
    """Push ``image`` (or an index and all its images) as ``repo:tag``; return the top digest.

    ``registry_url`` is ``http(s)://host:port``; ``auth`` is usually a :class:`RegistryAuth`.
    """
    with registry_client(registry_url, auth=auth, ca=ca) as client:
        if isinstance(image, ImageIndex):
            for child in image.images:
                _push_one(client, repo, child.digest, child)
            top = image.index
            digest = _push_manifest(client, repo, tag, top.media_type, top.read())
        else:
            _push_one(client, repo, tag, image)
            digest = image.digest
    expected = image.digest
    if digest and digest != expected:
        raise RuntimeError(f"registry stored {digest}, expected {expected}")
    return expected
