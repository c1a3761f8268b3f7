"""Pod manifests → CRI configs (``cri.cli.manifest``), and the pure parts of the pods CLI:
CRI log reassembly and ages."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli import manifest
from cri.cli.pods import LogAssembler, LogLine, human_age, parse_labels
from runtime.errors import FailedPrecondition, InvalidArgument

REPO = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "main", "image": "busybox:1.35"}]},
}


def pod(**spec: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["spec"].update(spec)
    return data


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "main", "image": "busybox:1.35", **fields}


def plan(data: dict[str, Any], **kwargs: Any) -> manifest.PodPlan:
    kwargs.setdefault("uid", "uid-1")
    kwargs.setdefault("log_root", "/logs")
    kwargs.setdefault("play_root", "/play")
    return manifest.plan_pod(manifest.load_pod(yaml.safe_dump(data)), **kwargs)


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidArgument) as info:
        plan(data)
    return str(info.value)


# -- sandbox -----------------------------------------------------------------------------
def test_sandbox_identity_paths_and_labels() -> None:
    p = plan(BASE)
    s = p.sandbox
    assert (s.metadata.name, s.metadata.namespace, s.metadata.uid, s.metadata.attempt) == (
        "web",
        "default",
        "uid-1",
        0,
    )
    assert s.hostname == "web"
    assert s.log_directory == "/logs/default_web_uid-1"
    assert dict(s.labels) == {
        "app": "web",
        "io.kubernetes.pod.name": "web",
        "io.kubernetes.pod.namespace": "default",
        "io.kubernetes.pod.uid": "uid-1",
    }
    assert s.annotations[manifest.LOG_DIRECTORY_ANNOTATION] == "/logs/default_web_uid-1"
    assert s.annotations[manifest.VOLUME_DIRECTORY_ANNOTATION] == "/play/uid-1"
    assert s.annotations[manifest.GRACE_PERIOD_ANNOTATION] == "30"
    # default namespaces: pod network and IPC, a PID namespace per container
    ns = s.linux.security_context.namespace_options
    assert (ns.network, ns.pid, ns.ipc) == (pb.POD, pb.CONTAINER, pb.POD)
    assert not s.HasField("dns_config")
    assert (p.name, p.namespace, p.uid, p.runtime_handler) == ("web", "default", "uid-1", "")


def test_manifest_uid_namespace_hostname_and_runtime_class_win() -> None:
    data = pod(hostname="box", runtimeClassName="crun", terminationGracePeriodSeconds=3)
    data["metadata"].update(namespace="team", uid="fixed")
    s = plan(data).sandbox
    assert (s.metadata.namespace, s.metadata.uid, s.hostname) == ("team", "fixed", "box")
    assert s.log_directory == "/logs/team_web_fixed"
    assert s.annotations[manifest.GRACE_PERIOD_ANNOTATION] == "3"
    assert plan(data).runtime_handler == "crun"


@pytest.mark.parametrize(
    ("spec", "network", "pid", "ipc", "hostname"),
    [
        ({"hostNetwork": True}, pb.NODE, pb.CONTAINER, pb.POD, ""),
        ({"hostPID": True}, pb.POD, pb.NODE, pb.POD, "web"),
        ({"shareProcessNamespace": True}, pb.POD, pb.POD, pb.POD, "web"),
        ({"hostIPC": True}, pb.POD, pb.CONTAINER, pb.NODE, "web"),
    ],
)
def test_namespace_modes(
    spec: dict[str, Any], network: int, pid: int, ipc: int, hostname: str
) -> None:
    p = plan(pod(**spec))
    for ns in (
        p.sandbox.linux.security_context.namespace_options,
        p.containers[0].config.linux.security_context.namespace_options,
    ):
        assert (ns.network, ns.pid, ns.ipc) == (network, pid, ipc)
    assert p.sandbox.hostname == hostname


def test_ports_with_host_ports_become_port_mappings() -> None:
    ports = [
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
        {"containerPort": 9000, "name": "metrics"},
    ]
    p = plan(pod(containers=[container(ports=ports)]))
    assert [
        (m.protocol, m.container_port, m.host_port, m.host_ip) for m in p.sandbox.port_mappings
    ] == [(pb.TCP, 80, 8080, ""), (pb.UDP, 53, 5353, "127.0.0.1")]
    assert (
        '"name": "metrics"' in p.containers[0].config.annotations["io.kubernetes.container.ports"]
    )


def test_host_network_host_ports_default_to_container_ports() -> None:
    p = plan(pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 8080}])]))
    assert [(m.container_port, m.host_port) for m in p.sandbox.port_mappings] == [(8080, 8080)]
    message = refused(
        pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 80, "hostPort": 81}])])
    )
    assert "spec.containers[0].ports[0].hostPort" in message and "hostNetwork" in message


@pytest.mark.parametrize(
    ("port", "field"),
    [
        ({"containerPort": 0}, "ports[0].containerPort"),
        ({"containerPort": 70000}, "ports[0].containerPort"),
        ({"containerPort": 80, "hostPort": 70000}, "ports[0].hostPort"),
        ({"containerPort": 80, "protocol": "ICMP"}, "ports[0].protocol"),
        ({"containerPort": 80, "name": "Not_A_Name"}, "ports[0].name"),
        ({"containerPort": 80, "hostIP": "localhost"}, "ports[0].hostIP"),
    ],
)
def test_invalid_ports(port: dict[str, Any], field: str) -> None:
    assert f"spec.containers[0].{field}" in refused(pod(containers=[container(ports=[port])]))


def test_duplicate_host_ports_across_containers() -> None:
    a = container(name="a", ports=[{"containerPort": 80, "hostPort": 8080}])
    b = container(name="b", ports=[{"containerPort": 81, "hostPort": 8080}])
    assert "spec.containers[1].ports[0].hostPort: Duplicate value" in refused(
        pod(containers=[a, b])
    )


def test_dns_from_the_node_merged_with_dns_config() -> None:
    host = "# comment\nnameserver 10.0.0.2\nsearch node.local\noptions ndots:1 rotate\n"
    dns = {
        "nameservers": ["10.96.0.10"],
        "searches": ["svc.local"],
        "options": [{"name": "ndots", "value": "5"}, {"name": "edns0"}],
    }
    s = plan(pod(dnsConfig=dns), host_resolv_conf=host).sandbox
    assert list(s.dns_config.servers) == ["10.0.0.2", "10.96.0.10"]
    assert list(s.dns_config.searches) == ["node.local", "svc.local"]
    assert list(s.dns_config.options) == ["rotate", "ndots:5", "edns0"]
    only = plan(
        pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"]}), host_resolv_conf=host
    )
    assert list(only.sandbox.dns_config.servers) == ["1.1.1.1"]
    assert list(only.sandbox.dns_config.searches) == []
    assert "spec.dnsConfig.nameservers: Required value" in refused(pod(dnsPolicy="None"))
    assert "spec.dnsConfig.nameservers[0]" in refused(pod(dnsConfig={"nameservers": ["dns"]}))


def test_pod_security_context_and_sysctls() -> None:
    sc = {
        "runAsUser": 1000,
        "runAsGroup": 2000,
        "supplementalGroups": [5],
        "fsGroup": 7,
        "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    p = plan(pod(securityContext=sc))
    ssc = p.sandbox.linux.security_context
    assert (ssc.run_as_user.value, ssc.run_as_group.value) == (1000, 2000)
    assert list(ssc.supplemental_groups) == [5, 7]
    assert ssc.seccomp.profile_type == pb.SecurityProfile.RuntimeDefault
    assert dict(p.sandbox.linux.sysctls) == {"net.ipv4.ip_unprivileged_port_start": "0"}
    csc = p.containers[0].config.linux.security_context
    assert (csc.run_as_user.value, csc.run_as_group.value) == (1000, 2000)
    assert list(csc.supplemental_groups) == [5, 7]
    assert ssc.supplemental_groups_policy == csc.supplemental_groups_policy == pb.Merge
    strict = plan(pod(securityContext={**sc, "supplementalGroupsPolicy": "Strict"}))
    assert strict.sandbox.linux.security_context.supplemental_groups_policy == pb.Strict
    assert strict.containers[0].config.linux.security_context.supplemental_groups_policy == (
        pb.Strict
    )


# -- containers --------------------------------------------------------------------------
def test_command_args_env_and_expansion() -> None:
    c = container(
        command=["sh", "-c"],
        args=["echo $(GREETING) $(MISSING) $$(GREETING)"],
        workingDir="/work",
        env=[
            {"name": "GREETING", "value": "hello"},
            {"name": "BOTH", "value": "$(GREETING) world"},
            {"name": "EMPTY"},
        ],
        stdin=True,
        tty=True,
    )
    config = plan(pod(containers=[c])).containers[0].config
    assert list(config.command) == ["sh", "-c"]
    assert list(config.args) == ["echo hello $(MISSING) $(GREETING)"]
    assert config.working_dir == "/work"
    assert [(e.key, e.value) for e in config.envs] == [
        ("GREETING", b"hello"),
        ("BOTH", b"hello world"),
        ("EMPTY", b""),
    ]
    assert (config.stdin, config.tty, config.stdin_once) == (True, True, False)


def test_container_identity_log_path_and_image() -> None:
    config = plan(BASE).containers[0].config
    assert (config.metadata.name, config.metadata.attempt) == ("main", 0)
    assert config.image.image == "busybox:1.35"
    assert config.log_path == "main/0.log"
    assert dict(config.labels) == {
        "io.kubernetes.container.name": "main",
        "io.kubernetes.pod.name": "web",
        "io.kubernetes.pod.namespace": "default",
        "io.kubernetes.pod.uid": "uid-1",
    }
    assert config.annotations["io.kubernetes.container.restartCount"] == "0"


def test_value_from_is_refused_by_field() -> None:
    env = [
        {"name": "A", "value": "1"},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    message = refused(pod(containers=[container(env=env)]))
    assert "spec.containers[0].env[1].valueFrom: Unsupported value" in message


def test_env_from_and_lifecycle_are_refused() -> None:
    c = container(
        envFrom=[{"configMapRef": {"name": "x"}}],
        lifecycle={"preStop": {"exec": {"command": ["x"]}}},
    )
    message = refused(pod(containers=[c]))
    assert "spec.containers[0].envFrom" in message and "spec.containers[0].lifecycle" in message


@pytest.mark.parametrize(
    ("resources", "quota", "period", "shares", "memory"),
    [
        ({}, 0, 0, 2, 0),
        ({"limits": {"cpu": "500m", "memory": "64Mi"}}, 50_000, 100_000, 512, 64 << 20),
        ({"limits": {"cpu": "2"}}, 200_000, 100_000, 2048, 0),
        ({"limits": {"cpu": 1.5}}, 150_000, 100_000, 1536, 0),
        ({"limits": {"cpu": "1m"}}, 1_000, 100_000, 2, 0),  # minimum quota and shares
        ({"limits": {"cpu": "1"}, "requests": {"cpu": "250m"}}, 100_000, 100_000, 256, 0),
        ({"requests": {"cpu": "100m", "memory": "1G"}}, 0, 0, 102, 0),
        ({"limits": {"memory": "1e3"}}, 0, 0, 2, 1000),
    ],
)
def test_resources_follow_kubelet_math(
    resources: dict[str, Any], quota: int, period: int, shares: int, memory: int
) -> None:
    r = plan(pod(containers=[container(resources=resources)])).containers[0].config.linux.resources
    assert (r.cpu_quota, r.cpu_period, r.cpu_shares, r.memory_limit_in_bytes) == (
        quota,
        period,
        shares,
        memory,
    )


def test_hugepage_limits() -> None:
    r = plan(pod(containers=[container(resources={"limits": {"hugepages-2Mi": "4Mi"}})]))
    limits = r.containers[0].config.linux.resources.hugepage_limits
    assert [(h.page_size, h.limit) for h in limits] == [("2MB", 4 << 20)]


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"limits": {"cpu": "lots"}}, "resources.limits[cpu]"),
        ({"limits": {"memory": "-1"}}, "resources.limits[memory]"),
        ({"limits": {"nvidia.com/gpu": "1"}}, "resources.limits[nvidia.com/gpu]"),
        ({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}, "resources.requests[cpu]"),
    ],
)
def test_invalid_resources(resources: dict[str, Any], field: str) -> None:
    assert f"spec.containers[0].{field}" in refused(
        pod(containers=[container(resources=resources)])
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("2", Decimal(2)),
        ("64Mi", Decimal(64 * 1024 * 1024)),
        ("1Ki", Decimal(1024)),
        ("1k", Decimal(1000)),
        ("1G", Decimal(10**9)),
        ("1E", Decimal(10**18)),
        ("12e6", Decimal(12 * 10**6)),
        ("100n", Decimal("0.0000001")),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert manifest.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5 Mi", "1MB", "-1"])
def test_parse_quantity_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument):
        manifest.parse_quantity(text)


def test_container_security_context() -> None:
    sc = {
        "runAsUser": 10,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
    }
    p = plan(
        pod(
            securityContext={"runAsUser": 99, "runAsGroup": 5},
            containers=[container(securityContext=sc)],
        )
    )
    csc = p.containers[0].config.linux.security_context
    assert (csc.run_as_user.value, csc.run_as_group.value) == (10, 5)  # the container's wins
    assert (csc.privileged, csc.readonly_rootfs, csc.no_new_privs) == (False, True, True)
    assert list(csc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(csc.capabilities.drop_capabilities) == ["ALL"]
    assert not p.sandbox.linux.security_context.privileged


def test_a_privileged_container_makes_the_sandbox_privileged() -> None:
    p = plan(pod(containers=[container(securityContext={"privileged": True})]))
    assert p.containers[0].config.linux.security_context.privileged
    assert p.sandbox.linux.security_context.privileged
    bad = container(securityContext={"privileged": True, "allowPrivilegeEscalation": False})
    assert "allowPrivilegeEscalation" in refused(pod(containers=[bad]))


def test_run_as_non_root_against_the_image() -> None:
    p = plan(pod(securityContext={"runAsNonRoot": True}))
    c = p.containers[0]
    assert c.run_as_non_root
    manifest.check_run_as_non_root(c, image_uid=1000, image_user="")
    with pytest.raises(FailedPrecondition, match="will run as root"):
        manifest.check_run_as_non_root(c, image_uid=0, image_user="")
    with pytest.raises(FailedPrecondition, match="will run as root"):
        manifest.check_run_as_non_root(c, image_uid=None, image_user="")
    with pytest.raises(FailedPrecondition, match="non-numeric user"):
        manifest.check_run_as_non_root(c, image_uid=None, image_user="nobody")
    explicit = plan(pod(securityContext={"runAsNonRoot": True, "runAsUser": 5})).containers[0]
    manifest.check_run_as_non_root(explicit, image_uid=0, image_user="")
    assert "runAsNonRoot" in refused(pod(securityContext={"runAsNonRoot": True, "runAsUser": 0}))


@pytest.mark.parametrize(
    ("image", "policy", "expected"),
    [
        ("busybox", None, "Always"),
        ("busybox:latest", None, "Always"),
        ("registry:5000/busybox", None, "Always"),
        ("registry:5000/busybox:1.35", None, "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, None, "IfNotPresent"),
        ("busybox:1.35", "Always", "Always"),
        ("busybox", "Never", "Never"),
    ],
)
def test_pull_policy_defaults(image: str, policy: str | None, expected: str) -> None:
    fields = {"imagePullPolicy": policy} if policy else {}
    assert (
        plan(pod(containers=[container(image=image, **fields)])).containers[0].pull_policy
        == expected
    )


# -- volumes -----------------------------------------------------------------------------
def test_empty_dir_and_host_path_mounts() -> None:
    volumes = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": "/srv/data", "type": "DirectoryOrCreate"}},
        {"name": "sock", "hostPath": {"path": "/run/x.sock", "type": "Socket"}},
        {"name": "conf", "hostPath": {"path": "/etc/app.conf", "type": "FileOrCreate"}},
    ]
    mounts = [
        {"name": "scratch", "mountPath": "/scratch"},
        {
            "name": "host",
            "mountPath": "/data",
            "readOnly": True,
            "mountPropagation": "HostToContainer",
        },
        {"name": "scratch", "mountPath": "/sub", "subPath": "a/b"},
        {"name": "sock", "mountPath": "/x.sock"},
    ]
    p = plan(pod(volumes=volumes, containers=[container(volumeMounts=mounts)]))
    got = [
        (m.container_path, m.host_path, m.readonly, m.propagation)
        for m in p.containers[0].config.mounts
    ]
    assert got == [
        ("/scratch", "/play/uid-1/scratch", False, pb.PROPAGATION_PRIVATE),
        ("/data", "/srv/data", True, pb.PROPAGATION_HOST_TO_CONTAINER),
        ("/sub", "/play/uid-1/scratch/a/b", False, pb.PROPAGATION_PRIVATE),
        ("/x.sock", "/run/x.sock", False, pb.PROPAGATION_PRIVATE),
    ]
    assert p.directories == ("/play/uid-1/scratch", "/srv/data", "/play/uid-1/scratch/a/b")
    assert p.files == ("/etc/app.conf",)
    assert p.host_path_checks == (
        manifest.HostPathCheck("spec.volumes[2].hostPath", "/run/x.sock", "Socket"),
    )


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        ({"name": "cm", "configMap": {"name": "settings"}}, "spec.volumes[0].configMap"),
        ({"name": "s", "secret": {"secretName": "x"}}, "spec.volumes[0].secret"),
        (
            {"name": "p", "persistentVolumeClaim": {"claimName": "x"}},
            "spec.volumes[0].persistentVolumeClaim",
        ),
        ({"name": "m", "emptyDir": {"medium": "Memory"}}, "spec.volumes[0].emptyDir.medium"),
        ({"name": "h", "hostPath": {"path": "relative"}}, "spec.volumes[0].hostPath.path"),
        (
            {"name": "h", "hostPath": {"path": "/x", "type": "Weird"}},
            "spec.volumes[0].hostPath.type",
        ),
        ({"name": "Bad_Name", "emptyDir": {}}, "spec.volumes[0].name"),
        ({"name": "none"}, "spec.volumes[0]: Required value"),
    ],
)
def test_unsupported_or_invalid_volumes(volume: dict[str, Any], field: str) -> None:
    assert field in refused(pod(volumes=[volume]))


@pytest.mark.parametrize(
    ("mount", "field"),
    [
        ({"name": "nope", "mountPath": "/x"}, "volumeMounts[0].name: Not found"),
        ({"name": "v", "mountPath": "relative"}, "volumeMounts[0].mountPath"),
        ({"name": "v", "mountPath": "/x", "subPath": "../up"}, "volumeMounts[0].subPath"),
        (
            {"name": "v", "mountPath": "/x", "mountPropagation": "Bidirectional"},
            "volumeMounts[0].mountPropagation: Forbidden",
        ),
    ],
)
def test_invalid_volume_mounts(mount: dict[str, Any], field: str) -> None:
    data = pod(
        volumes=[{"name": "v", "emptyDir": {}}], containers=[container(volumeMounts=[mount])]
    )
    assert f"spec.containers[0].{field}" in refused(data)


# -- validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["metadata"].update(name="Web_1"), 'metadata.name: Invalid value: "Web_1"'),
        (lambda d: d["metadata"].update(name="x" * 254), "metadata.name"),
        (lambda d: d["metadata"].pop("name"), "metadata.name: Required value"),
        (lambda d: d["metadata"].update(namespace="a.b"), "metadata.namespace"),
        (lambda d: d["metadata"].update(labels={"bad key!": "x"}), "metadata.labels"),
        (lambda d: d["metadata"].update(labels={"ok": "bad value!"}), "metadata.labels[ok]"),
        (lambda d: d["spec"]["containers"][0].update(name="Main"), "spec.containers[0].name"),
        (lambda d: d["spec"]["containers"][0].update(name="a" * 64), "spec.containers[0].name"),
        (
            lambda d: d["spec"]["containers"][0].pop("image"),
            "spec.containers[0].image: Required value",
        ),
        (
            lambda d: d["spec"]["containers"].append(container()),
            'spec.containers[1].name: Duplicate value: "main"',
        ),
        (lambda d: d["spec"].update(containers=[]), "spec.containers: Required value"),
        (
            lambda d: d["spec"].update(hostAliases=[{"ip": "127.0.0.1", "hostnames": ["a"]}]),
            "spec.hostAliases",
        ),
        (
            lambda d: d["spec"].update(hostUsers=False, hostNetwork=True),
            "spec.hostNetwork: Forbidden: when `hostUsers` is false",
        ),
        (
            lambda d: d["spec"]["containers"][0].update(imagePullPolicy="Sometimes"),
            "imagePullPolicy",
        ),
    ],
)
def test_invalid_manifests_name_the_field(mutate: Any, expected: str) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    message = refused(data)
    assert expected in message
    assert message.startswith('Pod "')


def test_every_problem_is_reported_at_once() -> None:
    data = pod(containers=[container(name="A", image=""), container(name="A")])
    message = refused(data)
    assert "spec.containers[0].name" in message
    assert "spec.containers[0].image: Required value" in message
    assert "spec.containers[1].name: Duplicate value" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "kind: Pod"),
        ("- a\n- b\n", "YAML mapping"),
        ("a: [\n", "not valid YAML"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "spec: Required value"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{image: b}]\n",
            "spec.containers[0].name: Required value",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n"
            "  containers: [{name: a, image: b, ports: [{containerPort: http}]}]\n",
            "containerPort",
        ),
    ],
)
def test_load_refuses(text: str, expected: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        manifest.load_pod(text)
    assert expected in str(info.value)


def test_unknown_fields_are_refused_like_strict_validation() -> None:
    data = pod(hostNetwrk=True)
    data["spec"]["containers"][0]["comand"] = ["x"]
    data["spec"]["containers"][0]["image_pull_policy"] = "Always"  # snake_case is not the API
    with pytest.raises(InvalidArgument) as info:
        manifest.load_pod(yaml.safe_dump(data))
    message = str(info.value)
    assert 'unknown field "spec.hostNetwrk"' in message
    assert 'unknown field "spec.containers[0].comand"' in message
    assert 'unknown field "spec.containers[0].image_pull_policy"' in message


def test_init_containers_are_planned_in_order_and_sidecars_refused() -> None:
    inits = [container(name="one", command=["true"]), container(name="two", command=["true"])]
    p = plan(pod(initContainers=inits))
    assert [c.name for c in p.init_containers] == ["one", "two"]
    assert [c.config.log_path for c in p.init_containers] == ["one/0.log", "two/0.log"]
    assert "spec.initContainers[0].name: Duplicate value" not in refused(
        pod(initContainers=[container(name="side", restartPolicy="Always")])
    )
    assert "spec.initContainers[0].restartPolicy" in refused(
        pod(initContainers=[container(name="side", restartPolicy="Always")])
    )
    assert 'spec.containers[0].name: Duplicate value: "main"' in refused(
        pod(initContainers=[container()])
    )


def test_the_example_manifest_plays() -> None:
    text = (REPO / "deploy/examples/pod.yaml").read_text()  # as shipped: no placeholder
    p = manifest.plan_pod(manifest.load_pod(text), uid="u", log_root="/l", play_root="/p")
    assert p.name == "hello"
    assert [c.name for c in p.init_containers] == ["prepare"]
    assert [c.name for c in p.containers] == ["greeter"]  # not the pod's name: no ambiguity
    assert p.containers[0].config.image.image == "docker.io/library/busybox:1.36"
    assert "hello from hello" in p.containers[0].config.args[0]
    assert p.directories == ("/p/u/data",)


def test_expand() -> None:
    env = {"A": "1", "B": "two"}
    assert manifest.expand("$(A)-$(B)-$(C)-$$(A)-$-$(", env) == "1-two-$(C)-$(A)-$-$("


def test_resolv_conf_parsing() -> None:
    text = (
        "domain example.org\nsearch a.local b.local\nnameserver 1.1.1.1 ; x\n"
        "nameserver ::1\noptions ndots:2 edns0\n"
    )
    assert manifest.parse_resolv_conf(text) == (
        ["1.1.1.1", "::1"],
        ["a.local", "b.local"],
        ["ndots:2", "edns0"],
    )


# -- the pods CLI's pure parts -----------------------------------------------------------
def test_log_assembler_joins_partial_lines_per_stream() -> None:
    assembler = LogAssembler()
    data = (
        b"2024-01-01T00:00:00.1Z stdout P hel\n"
        b"2024-01-01T00:00:00.2Z stderr F oops\n"
        b"2024-01-01T00:00:00.3Z stdout F lo\n"
        b"2024-01-01T00:00:00.4Z stdout F \n"
        b"2024-01-01T00:00:00.5Z stdout F to"
    )
    assert assembler.feed(data[:30]) == []
    lines = assembler.feed(data[30:])
    assert lines == [
        LogLine("stderr", "2024-01-01T00:00:00.2Z", b"oops\n"),
        LogLine("stdout", "2024-01-01T00:00:00.1Z", b"hello\n"),
        LogLine("stdout", "2024-01-01T00:00:00.4Z", b"\n"),
    ]
    assert assembler.feed(b"rn\nnot a record\n2024-01-01T00:00:00.6Z stdout P tail\n") == [
        LogLine("stdout", "2024-01-01T00:00:00.5Z", b"torn\n")
    ]
    assert assembler.flush() == [LogLine("stdout", "2024-01-01T00:00:00.6Z", b"tail")]
    assert assembler.flush() == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "Less than a second ago"),
        (1, "1 second ago"),
        (45, "45 seconds ago"),
        (61, "About a minute ago"),
        (180, "3 minutes ago"),
        (3600, "About an hour ago"),
        (5 * 3600, "5 hours ago"),
        (3 * 86400, "3 days ago"),
        (21 * 86400, "3 weeks ago"),
        (90 * 86400, "3 months ago"),
        (3 * 365 * 86400, "3 years ago"),
    ],
)
def test_human_age(seconds: float, text: str) -> None:
    assert human_age(seconds) == text


def test_parse_labels() -> None:
    assert parse_labels(["a=b", "c=", "d=e=f"]) == {"a": "b", "c": "", "d": "e=f"}
    with pytest.raises(InvalidArgument):
        parse_labels(["novalue"])


def test_host_users_false_plans_the_pods_own_user_namespace_as_the_kubelet_sends_it() -> None:
    data = pod(
        hostUsers=False,
        volumes=[{"name": "scratch", "emptyDir": {}}],
        containers=[container(volumeMounts=[{"name": "scratch", "mountPath": "/s"}])],
    )
    p = plan(data, uid="u", userns_host_id=3 * 65536)
    mapping = pb.IDMapping(host_id=3 * 65536, container_id=0, length=65536)
    want = pb.UserNamespace(mode=pb.POD, uids=[mapping], gids=[mapping])
    assert p.sandbox.linux.security_context.namespace_options.userns_options == want
    (main,) = p.containers
    assert main.config.linux.security_context.namespace_options.userns_options == want
    (mount,) = main.config.mounts
    assert list(mount.uidMappings) == [mapping] and list(mount.gidMappings) == [mapping]
    host = plan(pod(), uid="u")
    assert not host.sandbox.linux.security_context.namespace_options.HasField("userns_options")


def test_free_user_namespace_ranges_start_above_the_nodes_ids() -> None:
    assert manifest.free_userns_host_id([]) == 65536
    assert manifest.free_userns_host_id([65536, 131072, 262144]) == 196608
