"""The errors the runtime raises, named for what went wrong rather than for a transport.

``cri/errors.py`` is the one place that maps these to gRPC status codes. Each error says whose
fault it is: the caller's input (InvalidArgument), the state of the world (NotFound,
AlreadyExists, FailedPrecondition), a peer we depend on (Unavailable, RegistryUnavailable) or
our own bug (Internal).
"""

from __future__ import annotations


class PinnaceError(Exception):
    """Base of every error the runtime raises on purpose."""


class InvalidArgument(PinnaceError):
    """The caller's input is malformed; the message says what to fix."""


class NotFound(PinnaceError):
    """The named object does not exist."""


class AlreadyExists(PinnaceError):
    """An object with that identity exists already."""


class FailedPrecondition(PinnaceError):
    """The system is not in a state where the operation can run."""


class Unauthenticated(PinnaceError):
    """A peer (a registry) refused our credentials or asked for ones we do not have."""


class PermissionDenied(PinnaceError):
    """A peer refused the operation for the credentials we presented."""


class Unavailable(PinnaceError):
    """A peer or resource we depend on cannot be reached right now; retrying may help."""


class RegistryUnavailable(Unavailable):
    """A registry could not be reached. The message starts with ``RegistryUnavailable:``, the
    prefix kubelet recognises (cri-api ``ErrRegistryUnavailable``)."""

    def __init__(self, message: str) -> None:
        if not message.startswith("RegistryUnavailable"):
            message = f"RegistryUnavailable: {message}"
        super().__init__(message)


class ResourceExhausted(PinnaceError):
    """A resource of the node is used up (the disk under the root or state directory is
    full); freeing it and retrying helps."""


class DeadlineExceeded(PinnaceError):
    """An operation made no progress within its deadline."""


class DigestMismatch(FailedPrecondition):
    """Content did not hash to the digest (or size) it was promised under."""

    def __init__(self, *, expected: str, actual: str, what: str = "content") -> None:
        super().__init__(f"{what} digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class Unimplemented(PinnaceError):
    """The operation is valid but pinnace does not support it (yet)."""


class Internal(PinnaceError):
    """pinnace broke an invariant of its own: a bug, never the caller's fault."""
