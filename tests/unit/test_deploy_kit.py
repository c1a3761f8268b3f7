"""deploy/ as shipped: the examples parse with pinnace's own loaders, and the unit, crictl and
kubelet settings agree with the default config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from runtime.distribution.hosts import load_hosts
from runtime.network.conf import parse_conflist

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _config() -> dict:
    return tomllib.loads((DEPLOY / "config.toml").read_text())


def test_certs_d_examples_parse() -> None:
    mirror = load_hosts(DEPLOY / "certs.d", "docker.io")
    assert [h.authority for h in mirror] == ["mirror.example.com", "registry-1.docker.io"]
    private = load_hosts(DEPLOY / "certs.d", "registry.example.com")[-1]
    assert private.ca_files and private.client_certs
    local = load_hosts(DEPLOY / "certs.d", "localhost:5000")[-1]
    assert local.scheme == "http"


def test_cni_example_parses_and_masquerades_for_real_nodes() -> None:
    raw = (DEPLOY / "cni/10-pinnace.conflist").read_bytes()
    network = parse_conflist(raw)
    assert [p.type for p in network.plugins] == ["bridge", "portmap", "loopback"]
    assert network.plugins[0].as_dict()["ipMasq"] is True  # tests that bring it up use false


def test_unit_file_waits_for_readiness_and_keeps_containers() -> None:
    unit = (DEPLOY / "pinnace.service").read_text().splitlines()
    for line in ("Type=notify", "KillMode=process", "Delegate=yes", "LimitNOFILE=infinity"):
        assert line in unit, line
    assert "ExecStart=/usr/local/bin/pinnaced --config /etc/pinnace/config.toml" in unit


def test_crictl_and_kubelet_name_the_configured_socket_and_driver() -> None:
    config = _config()
    address = config["daemon"]["address"]
    crictl = yaml.safe_load((DEPLOY / "crictl.yaml").read_text())
    assert crictl["runtime-endpoint"] == crictl["image-endpoint"] == address
    kubelet = yaml.safe_load((DEPLOY / "kubelet/config.yaml").read_text())
    assert kubelet["kind"] == "KubeletConfiguration"
    assert kubelet["containerRuntimeEndpoint"] == kubelet["imageServiceEndpoint"] == address
    assert kubelet["cgroupDriver"] == config["runtime"]["cgroup_driver"]
