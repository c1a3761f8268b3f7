"""containerd hosts.toml directory semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.distribution.hosts import RegistryHost, find_host_dir, is_loopback, load_hosts
from runtime.errors import InvalidArgument


def write(root: Path, registry: str, text: str) -> Path:
    d = root / registry
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts.toml").write_text(text)
    return d


def test_defaults_without_config() -> None:
    [hub] = load_hosts(None, "docker.io")
    assert hub.url == "https://registry-1.docker.io"
    assert hub.path_prefix == "/v2"
    assert hub.capabilities == frozenset({"pull", "resolve", "push"})
    assert not hub.skip_verify and not hub.fallback_http
    [quay] = load_hosts(None, "quay.io")
    assert quay.url == "https://quay.io"


@pytest.mark.parametrize(
    ("registry", "url", "skip_verify", "fallback"),
    [
        ("localhost:5000", "https://localhost:5000", True, True),
        ("127.0.0.1:5000", "https://127.0.0.1:5000", True, True),
        ("[::1]:5000", "https://[::1]:5000", True, True),
        ("localhost", "https://localhost", True, False),
        ("localhost:443", "https://localhost:443", True, False),
        ("localhost:80", "http://localhost:80", False, False),
        ("example.com:5000", "https://example.com:5000", False, False),
    ],
)
def test_loopback_defaults(registry: str, url: str, skip_verify: bool, fallback: bool) -> None:
    [host] = load_hosts(None, registry)
    assert (host.url, host.skip_verify, host.fallback_http) == (url, skip_verify, fallback)


def test_is_loopback() -> None:
    assert is_loopback("localhost:1") and is_loopback("127.0.0.2") and is_loopback("[::1]:5")
    assert not is_loopback("10.0.0.1:5000") and not is_loopback("example.com")


def test_mirrors_in_file_order_then_server(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "docker.io",
        """
server = "https://registry-1.docker.io"

[host."https://z-mirror.example"]
  capabilities = ["pull"]
[host."http://a-mirror.example:5000"]
  capabilities = ["pull", "resolve"]
  ca = "mirror.crt"
  client = [["client.cert", "client.key"], "/abs/other.pem"]
  [host."http://a-mirror.example:5000".header]
    x-custom = "1"
    x-multi = ["a", "b"]
[host."mirror3.example/some/path"]
  override_path = true
""",
    )
    hosts = load_hosts(tmp_path, "docker.io")
    assert [h.url for h in hosts] == [
        "https://z-mirror.example",
        # http with a TLS setting on a non-80 port: HTTPS first, falling back to HTTP.
        "https://a-mirror.example:5000",
        "https://mirror3.example",
        "https://registry-1.docker.io",
    ]
    z, a, m3, upstream = hosts
    assert z.capabilities == frozenset({"pull"})
    assert a.capabilities == frozenset({"pull", "resolve"})
    assert a.fallback_http and not z.fallback_http
    assert a.ca_files == (d / "mirror.crt",)
    assert a.client_certs == ((d / "client.cert", d / "client.key"), (Path("/abs/other.pem"), None))
    assert dict(a.headers) == {"x-custom": ("1",), "x-multi": ("a", "b")}
    assert m3.path_prefix == "/some/path" and m3.override_path
    assert upstream.capabilities == frozenset({"pull", "resolve", "push"})


def test_server_path_gets_v2_unless_override(tmp_path: Path) -> None:
    write(tmp_path, "r.example", 'server = "https://proxy.example/registry"\n')
    [h] = load_hosts(tmp_path, "r.example")
    assert (h.url, h.path_prefix) == ("https://proxy.example", "/registry/v2")
    write(tmp_path, "s.example", 'server = "https://proxy.example/x/v2/"\n')
    [h] = load_hosts(tmp_path, "s.example")
    assert h.path_prefix == "/x/v2"
    write(tmp_path, "t.example", 'server = "https://proxy.example"\noverride_path = true\n')
    [h] = load_hosts(tmp_path, "t.example")
    assert h.path_prefix == "" and h.override_path


def test_plain_http_server(tmp_path: Path) -> None:
    write(tmp_path, "r.example:5000", 'server = "http://r.example:5000"\n')
    [h] = load_hosts(tmp_path, "r.example:5000")
    assert h.url == "http://r.example:5000" and h.scheme == "http" and not h.fallback_http
    assert h.authority == "r.example:5000"


def test_no_server_means_default_upstream_with_top_level_settings(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "docker.io",
        """
ca = "/etc/hub-ca.pem"
[header]
  authorization-extra = "x"
[host."https://mirror.example"]
  capabilities = ["pull", "resolve"]
""",
    )
    del d
    mirror, upstream = load_hosts(tmp_path, "docker.io")
    assert mirror.url == "https://mirror.example"
    assert upstream.url == "https://registry-1.docker.io"
    assert upstream.ca_files == (Path("/etc/hub-ca.pem"),)
    assert dict(upstream.headers) == {"authorization-extra": ("x",)}


def test_directory_lookup_order(tmp_path: Path) -> None:
    write(tmp_path, "_default", 'server = "https://default.example"\n')
    assert load_hosts(tmp_path, "other.example")[0].url == "https://default.example"
    write(tmp_path, "r.example:5000", 'server = "https://colon.example"\n')
    assert load_hosts(tmp_path, "r.example:5000")[0].url == "https://colon.example"
    write(tmp_path, "r.example_5000_", 'server = "https://underscore.example"\n')
    assert load_hosts(tmp_path, "r.example:5000")[0].url == "https://underscore.example"
    assert find_host_dir(tmp_path, "r.example:5000") == tmp_path / "r.example_5000_"
    assert find_host_dir(tmp_path / "missing", "r.example") is None


def test_docker_cert_files_without_hosts_toml(tmp_path: Path) -> None:
    d = tmp_path / "r.example"
    d.mkdir()
    for name in ("ca.crt", "client.cert", "client.key", "lonely.cert", "notes.txt"):
        (d / name).write_text("x")
    [h] = load_hosts(tmp_path, "r.example")
    assert h.url == "https://r.example"
    assert h.ca_files == (d / "ca.crt",)
    assert h.client_certs == ((d / "client.cert", d / "client.key"), (d / "lonely.cert", None))


def test_dial_timeout(tmp_path: Path) -> None:
    write(tmp_path, "r.example", 'server = "https://r.example"\ndial_timeout = "1m500ms"\n')
    assert load_hosts(tmp_path, "r.example")[0].dial_timeout == pytest.approx(60.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server = ", "not valid TOML"),
        ("server = 5", "key 'server' must be a string"),
        ('server = "ftp://x"', "key 'server': 'ftp://x' is not an http(s) URL"),
        ('capabilities = ["pull", "fly"]', "unknown capability 'fly'"),
        ("capabilities = 'pull'", "key 'capabilities': must be a list of strings"),
        ("skip_verify = 'yes'", "key 'skip_verify': must be true or false"),
        ("ca = 5", "key 'ca'"),
        ("client = [[1, 2]]", "key 'client'"),
        ('[host."https://m"]\nheader = { a = 1 }', "key 'host.\"https://m\".header.a'"),
        ('[host."https://m"]\ndial_timeout = "soon"', "key 'host.\"https://m\".dial_timeout'"),
        ("host = 3", "key 'host' must be a table"),
    ],
)
def test_malformed_files_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    d = write(tmp_path, "r.example", text + "\n")
    with pytest.raises(InvalidArgument) as info:
        load_hosts(tmp_path, "r.example")
    assert str(d / "hosts.toml") in str(info.value)
    assert message in str(info.value)


def test_registry_host_is_frozen() -> None:
    host = RegistryHost(url="https://x")
    with pytest.raises(AttributeError):
        host.url = "https://y"  # type: ignore[misc]
