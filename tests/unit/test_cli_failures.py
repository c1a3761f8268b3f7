"""The CLI names a failure's cause from the status code and the daemon's error kind."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from cri.cli.failures import describe
from cri.cli.main import main as cli_main
from cri.cli.manifest_load import load_pod
from cri.errors import kind_for
from cri.wire import ERROR_KIND_KEY, unix_address
from runtime import errors


@dataclass
class FailedCall:
    """A failed call as a stub raises it: code, details, trailing metadata."""

    status: grpc.StatusCode
    text: str
    metadata: tuple[tuple[str, str], ...] = ()

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.text

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata


def _from_daemon(exc: errors.PinnaceError, code: grpc.StatusCode) -> FailedCall:
    return FailedCall(code, str(exc), ((ERROR_KIND_KEY, kind_for(exc)),))


def test_unavailable_without_the_daemons_kind_is_an_unreachable_daemon() -> None:
    failure = describe(
        FailedCall(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"),
        address="unix:///x.sock",
    )
    assert failure.cause == "daemon-unreachable"
    assert failure.line.startswith("cannot reach pinnaced at unix:///x.sock")


@pytest.mark.parametrize(
    ("errno_text", "meaning"),
    [
        ("No such file or directory", "no socket there; is pinnaced running?"),
        ("Connection refused", "nothing accepts connections on that socket"),
        ("Permission denied", "permission denied: run as root, or as a member of the socket's"),
    ],
)
def test_an_unreachable_daemon_says_why_in_the_users_words(errno_text: str, meaning: str) -> None:
    details = (
        "failed to connect to all addresses; last error: FAILED_PRECONDITION: unix:/x.sock: "
        f"connect failed: addr: unix:/x.sock error: {errno_text}"
    )
    failure = describe(FailedCall(grpc.StatusCode.UNAVAILABLE, details), address="unix:///x.sock")
    assert failure.line.startswith(f"cannot reach pinnaced at unix:///x.sock: {meaning}")
    assert "FAILED_PRECONDITION" not in failure.line


def test_an_address_that_is_no_unix_socket_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["--address", "tcp://127.0.0.1:5000", "ps"]) == 1
    assert capsys.readouterr().err == (
        "pinnace: --address tcp://127.0.0.1:5000: pinnaced serves a unix socket; give its path"
        " or unix://PATH\n"
    )


def test_a_registry_the_daemon_cannot_reach_is_named_even_if_the_words_say_connect() -> None:
    exc = errors.RegistryUnavailable("cannot reach registry r:5000: connect refused")
    failure = describe(_from_daemon(exc, grpc.StatusCode.UNAVAILABLE), address="unix:///x")
    assert failure.cause == "registry-unreachable"
    assert failure.line == "registry unreachable: cannot reach registry r:5000: connect refused"


def test_other_daemon_errors_keep_their_code() -> None:
    found = describe(
        _from_daemon(errors.NotFound("no pod p"), grpc.StatusCode.NOT_FOUND), address="a"
    )
    assert (found.cause, found.line) == ("not-found", "not found: no pod p")
    busy = describe(
        _from_daemon(errors.Unavailable("ingest x is locked"), grpc.StatusCode.UNAVAILABLE),
        address="a",
    )
    assert busy.cause == "daemon-error" and busy.line == "UNAVAILABLE: ingest x is locked"


def test_kind_is_the_most_specific_runtime_error() -> None:
    assert kind_for(errors.RegistryUnavailable("x")) == "RegistryUnavailable"
    assert kind_for(errors.DigestMismatch(expected="a", actual="b")) == "DigestMismatch"
    assert kind_for(ValueError("bug")) == "Internal"


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("/run/pinnace/pinnace.sock", "unix:///run/pinnace/pinnace.sock"),
        ("unix:///run/p.sock", "unix:///run/p.sock"),
        ("unix:/run/p.sock", "unix:///run/p.sock"),
    ],
)
def test_addresses(text: str, address: str) -> None:
    assert unix_address(text) == address


def test_manifest_errors_carry_file_line_and_field_path() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n"
        "  - name: x\n    image: y\n    ports:\n    - containerPort: abc\n"
    )
    with pytest.raises(errors.InvalidArgument) as caught:
        load_pod(text, source="pod.yaml")
    assert str(caught.value).startswith(
        'pod.yaml:9: Pod "a" is invalid: spec.containers[0].ports[0].containerPort:'
    )
    with pytest.raises(errors.InvalidArgument, match=r"^p: holds 2 YAML documents"):
        load_pod("a: 1\n---\nb: 2\n", source="p")
    with pytest.raises(errors.InvalidArgument, match=r"^p:1:5: not valid YAML"):
        load_pod("a: [", source="p")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e10", "abc"])
def test_a_timeout_that_cannot_be_waited_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli_main(["--timeout", value, "ps"])
    assert caught.value.code == 2
    assert "argument --timeout:" in capsys.readouterr().err
