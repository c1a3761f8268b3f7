"""Every metric deploy/grafana/pinnace.json queries exists in a real pinnaced's /metrics, with
samples, after the activity the panels show (RPCs, a failed call, a pull, a pod on a CNI
network created and removed)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx

from tests.support.cli import REPO_ROOT, run_cli
from tests.support.daemon import Pinnaced, hosts_toml
from tests.support.registry import Registry

DASHBOARD = REPO_ROOT / "deploy/grafana/pinnace.json"


def dashboard_metrics() -> set[str]:
    exprs = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        exprs += [target["expr"] for target in panel["targets"]]
    assert exprs
    return {name for expr in exprs for name in re.findall(r"\bpinnace_[a-z_]+", expr)}


def _sampled(exposition: str) -> set[str]:
    return {
        line.split("{")[0].split(" ")[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_dashboard_metric_is_exported(
    tmp_path: Path, registry: Registry, pushed_busybox: str
) -> None:
    wanted = dashboard_metrics()
    assert {"pinnace_grpc_request_duration_seconds_bucket", "pinnace_pods",
            "pinnace_cni_duration_seconds_bucket", "pinnace_event_subscribers_dropped_total",
            "pinnace_image_pull_bytes_total"} <= wanted  # fmt: skip
    hosts = tmp_path / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    port = _free_port()
    daemon = Pinnaced(tmp_path, registry_hosts_dir=hosts,
                      extra_args=["--metrics-address", f"127.0.0.1:{port}"])  # fmt: skip
    daemon.cni_conf_dir.mkdir(parents=True)
    (daemon.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]})
    )
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: metrics, namespace: grafana}\nspec:\n"
        "  terminationGracePeriodSeconds: 1\n  containers:\n"
        f'  - name: c\n    image: {pushed_busybox}\n    command: ["true"]\n'
    )
    roots = ["--log-root", str(tmp_path / "logs"), "--play-root", str(tmp_path / "play"),
             "--resolv-conf", ""]  # fmt: skip
    try:
        daemon.start()
        assert run_cli(daemon.socket, "image", "pull", "-q", pushed_busybox).returncode == 0
        assert run_cli(daemon.socket, "image", "inspect", "no/such:1").returncode == 1
        assert run_cli(
            daemon.socket, "image", "pull", "-q", f"{registry.host}/no/such:1"
        ).returncode
        played = run_cli(daemon.socket, "play", "-q", str(manifest), *roots)
        assert played.returncode == 0, played.stderr
        assert run_cli(daemon.socket, "play", "--down", str(manifest), *roots).returncode == 0
        exposition = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    finally:
        daemon.close()
    missing = sorted(wanted - _sampled(exposition))
    assert missing == [], missing
