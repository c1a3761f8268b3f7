"""Docker image references: grammar, normalisation and the familiar short form.

A *reference* names an image: ``[domain[:port]/]path[:tag][@digest]``. The grammar is the one
docker/distribution's ``reference`` package defines (re-expressed here, not copied):

- *domain*: DNS labels joined by dots, or a bracketed IPv6 address, with an optional port.
  The first ``/``-separated component is a domain only if it contains ``.`` or ``:``, is
  ``localhost``, or has an uppercase letter; otherwise the whole name is a Docker Hub path.
- *path*: ``/``-separated components of lowercase letters and digits, joined inside a component by
  one of ``.``, ``_``, ``__`` or a run of ``-``. At most 255 characters.
- *tag*: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.
- *digest*: ``sha256:`` + 64 hex digits (or ``sha512:`` + 128).

Normalisation: no domain means ``docker.io``; ``index.docker.io`` means ``docker.io``; a
one-component Docker Hub path gets ``library/``; no tag and no digest means tag ``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.errors import InvalidArgument
from runtime.ocispec import validate_digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_PATH_LENGTH = 255
MAX_TAG_LENGTH = 128

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")

_PATH_RULE = (
    "path components are lowercase letters and digits, separated inside a component by "
    "'.', '_', '__' or '-'"
)
_TAG_RULE = (
    f"a tag is 1 to {MAX_TAG_LENGTH} characters of [A-Za-z0-9_.-] and must not start with "
    "'.' or '-'"
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised image reference.

    ``domain`` is the registry (``docker.io``, ``localhost:5000``); ``path`` the repository in
    it (``library/busybox``); ``tag`` and ``digest`` may both be set, in which case the digest is
    what identifies the content and the tag is informational.
    """

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The repository's full name, ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def is_digest_ref(self) -> bool:
        """Whether the reference pins content by digest."""
        return bool(self.digest)

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        return self.digest or self.tag

    @property
    def familiar(self) -> str:
        """The short form people type: ``busybox:latest``, ``quay.io/x/y@sha256:…``."""
        domain, path = self.domain, self.path
        text = f"{domain}/{path}"
        if domain == DEFAULT_DOMAIN:
            text = path
            rest = path.removeprefix(OFFICIAL_REPO_PREFIX)
            if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in rest:
                text = rest
        return text + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """This repository at ``tag`` (without a digest)."""
        _check_tag(tag, self.name)
        return Reference(self.domain, self.path, tag, "")

    def with_digest(self, digest: str) -> Reference:
        """This repository pinned to ``digest`` (without a tag)."""
        _check_digest(digest, self.name)
        return Reference(self.domain, self.path, "", digest)

    def _suffix(self) -> str:
        text = f":{self.tag}" if self.tag else ""
        return f"{text}@{self.digest}" if self.digest else text

    def __str__(self) -> str:
        return self.name + self._suffix()


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; raise InvalidArgument saying exactly what is wrong."""
    if not text:
        raise InvalidArgument(
            "invalid reference '': repository name must have at least one component"
        )
    if _IDENTIFIER_RE.match(text):
        raise InvalidArgument(
            f"invalid reference {text!r}: a repository name cannot be a 64-character hex string "
            "(did you mean an image id or a digest?)"
        )
    remainder, at, digest = text.partition("@")
    if at:
        if not digest:
            raise InvalidArgument(f"invalid reference {text!r}: empty digest after '@'")
        if "@" in digest:
            raise InvalidArgument(f"invalid reference {text!r}: more than one '@'")
        _check_digest(digest, text)
    colon, slash = remainder.rfind(":"), remainder.rfind("/")
    tag = ""
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not tag:
            raise InvalidArgument(f"invalid reference {text!r}: empty tag after ':'")
        _check_tag(tag, text)
    domain, path = _split_domain(remainder, text)
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _split_domain(name: str, text: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash:
        domain, path = DEFAULT_DOMAIN, name
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if not _DOMAIN_RE.match(domain):
        raise InvalidArgument(
            f"invalid reference {text!r}: {domain!r} is not a valid registry host[:port]"
        )
    if domain == DEFAULT_DOMAIN and path and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    _check_path(path, text)
    return domain, path


def _check_path(path: str, text: str) -> None:
    if not path:
        raise InvalidArgument(
            f"invalid reference {text!r}: repository name must have at least one component"
        )
    if path.lower() != path:
        raise InvalidArgument(
            f"invalid reference {text!r}: repository name {path!r} must be lowercase"
        )
    for component in path.split("/"):
        if not component:
            raise InvalidArgument(f"invalid reference {text!r}: empty path component in {path!r}")
        if not _PATH_COMPONENT_RE.match(component):
            raise InvalidArgument(
                f"invalid reference {text!r}: path component {component!r} is invalid; {_PATH_RULE}"
            )
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidArgument(
            f"invalid reference {text!r}: repository name is {len(path)} characters long; "
            f"the limit is {MAX_PATH_LENGTH}"
        )


def _check_tag(tag: str, text: str) -> None:
    if len(tag) > MAX_TAG_LENGTH:
        raise InvalidArgument(
            f"invalid reference {text!r}: tag is {len(tag)} characters long; the limit is "
            f"{MAX_TAG_LENGTH}"
        )
    if not _TAG_RE.match(tag) or not tag.isascii():
        raise InvalidArgument(f"invalid reference {text!r}: invalid tag {tag!r}; {_TAG_RULE}")


def _check_digest(digest: str, text: str) -> None:
    try:
        validate_digest(digest)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid reference {text!r}: {exc}") from None
