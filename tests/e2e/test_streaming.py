"""Exec, attach and port-forward end to end: a real pinnaced, real containers under conmon,
and two independent clients: our SPDY client (``tests/support/spdy_client.py``) and, for
WebSocket, the ``kubernetes`` package's own ``kubernetes.stream`` client."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images
from tests.support.daemon import Pinnaced
from tests.support.push import push_image
from tests.support.registry import Registry
from tests.support.spdy_client import SpdyClient, UpgradeRefused, WebSocketTunnel, remote_command

BOX = "test/streambox"


@dataclass
class Env:
    daemon: Pinnaced
    runtime: Any
    pod_id: str
    pod_config: pb.PodSandboxConfig
    image: str

    def container(self, name: str, command: list[str], **kwargs: Any) -> str:
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=self.image),
            command=command,
            log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
            **kwargs,
        )
        cid = self.runtime.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=self.pod_id, config=config, sandbox_config=self.pod_config
            ),
            timeout=60,
        ).container_id
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        return str(cid)

    def exec_url(self, cid: str, cmd: list[str], **kwargs: Any) -> str:
        kwargs.setdefault("stdout", True)
        kwargs.setdefault("stderr", not kwargs.get("tty", False))
        return str(
            self.runtime.Exec(pb.ExecRequest(container_id=cid, cmd=cmd, **kwargs), timeout=30).url
        )


@pytest.fixture(scope="module")
def env(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    box = images.busybox_image(config=images.ImageConfig(cmd=("/bin/sh",), stop_signal=""))
    push_image(registry.url, BOX, "v1", box)
    ref = f"{registry.host}/{BOX}:v1"
    base = tmp_path_factory.mktemp("streaming")
    from tests.support.daemon import hosts_toml

    hosts_toml(base / "certs.d", registry.host, plain_http=True)
    daemon = Pinnaced(
        base,
        registry_hosts_dir=base / "certs.d",
        config_text=f'[images]\nsandbox_image = "{ref}"\n',
    )
    daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (daemon.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    daemon.start()
    try:
        runtime, image = daemon.clients()
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
        name = f"stream-{uuid.uuid4().hex[:6]}"
        pod_config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
            hostname=name,
            log_directory=str(base / "logs"),
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
        )
        pod_id = runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=pod_config), timeout=120
        ).pod_sandbox_id
        env = Env(daemon, runtime, pod_id, pod_config, ref)
        yield env
        # env.runtime: a test may have restarted the daemon
        for s in env.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
    finally:
        leftovers = daemon.close()
        assert not leftovers, leftovers


@pytest.fixture(scope="module")
def sleeper(env: Env) -> str:
    return env.container("sleeper", ["sleep", "100000"])


def test_rpc_validation(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["true"])
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    cases = [
        (pb.ExecRequest(container_id="nope", cmd=["true"], stdout=True), grpc.StatusCode.NOT_FOUND),
        (pb.ExecRequest(container_id=sleeper, cmd=["true"]), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.ExecRequest(container_id=sleeper, cmd=["sh"], tty=True, stdout=True, stderr=True),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.ExecRequest(container_id=sleeper, cmd=[], stdout=True),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            env.runtime.Exec(request, timeout=30)
        assert err.value.code() == code, request
    with pytest.raises(grpc.RpcError) as err:
        env.runtime.Attach(pb.AttachRequest(container_id="nope", stdout=True), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    pf = env.runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=env.pod_id, port=[80]))
    assert "/portforward/" in pf.url
    with pytest.raises(grpc.RpcError) as err:
        env.runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id="nope", port=[80]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_exec_over_spdy_stdout_stderr_exit_code(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    got = remote_command(url)
    assert got.protocol == "v4.channel.k8s.io"
    assert got.stdout == b"out\n"
    assert got.stderr == b"err\n"
    assert got.exit_code == 3
    assert got.status["reason"] == "NonZeroExitCode"
    ok = remote_command(env.exec_url(sleeper, ["true"]))
    assert ok.status == {"metadata": {}, "status": "Success"}


@pytest.mark.parametrize("protocol", ["v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"])
def test_exec_over_older_spdy_protocols(env: Env, sleeper: str, protocol: str) -> None:
    failed = remote_command(
        env.exec_url(sleeper, ["sh", "-c", "echo o; exit 9"]), protocols=(protocol,)
    )
    assert failed.protocol == protocol and failed.stdout == b"o\n"
    assert b"non-zero exit code" in failed.error and b"exit code 9" in failed.error
    ok = remote_command(env.exec_url(sleeper, ["true"]), protocols=(protocol,))
    assert ok.error == b""  # before v4 success says nothing


def test_exec_stdin_reaches_eof(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["sh", "-c", "cat; echo done"], stdin=True)
    data = b"hello\n" * 20000  # more than one window and several conmon packets
    got = remote_command(url, stdin=data)
    assert got.stdout == data + b"done\n"
    assert got.exit_code == 0


def test_token_is_single_use_and_unknown_tokens_are_404(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["true"])
    remote_command(url)
    with pytest.raises(UpgradeRefused) as err:
        SpdyClient(url)
    assert err.value.status == 404
    with pytest.raises(UpgradeRefused) as err:
        SpdyClient(url.rsplit("/", 1)[0] + "/AAAAAAAAAAAAAAAAAAAAAA")
    assert err.value.status == 404


def test_malformed_upgrade_is_400_and_unknown_protocols_403(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["true"])
    with pytest.raises(UpgradeRefused) as err:
        SpdyClient(url, upgrade="h2c")
    assert err.value.status == 400
    with pytest.raises(UpgradeRefused) as err:
        SpdyClient(url, protocols=("v9.channel.k8s.io",))
    assert err.value.status == 403
    assert "v4.channel.k8s.io" in err.value.headers["x-accepted-stream-protocol-versions"]


def _ws_client(url: str, protocols: str | None = None) -> Any:
    """The kubernetes package's own WebSocket exec client, pointed at our URL."""
    from kubernetes.client import Configuration
    from kubernetes.stream.ws_client import WSClient

    headers = {"sec-websocket-protocol": protocols} if protocols else None
    return WSClient(Configuration(), url.replace("http://", "ws://", 1), headers, True)


def test_exec_over_websocket_with_the_kubernetes_client(env: Env, sleeper: str) -> None:
    client = _ws_client(env.exec_url(sleeper, ["sh", "-c", "echo out; echo err >&2; exit 7"]))
    assert client.subprotocol == "v5.channel.k8s.io"
    client.run_forever(timeout=30)
    assert client.read_stdout() == "out\n"
    assert client.read_stderr() == "err\n"
    assert client.returncode == 7
    client.close()


def test_websocket_stdin_half_close_v5(env: Env, sleeper: str) -> None:
    client = _ws_client(env.exec_url(sleeper, ["sh", "-c", "tr a-z A-Z; echo end"], stdin=True))
    client.write_stdin("hello websocket\n")
    client.close_channel(0)  # v5: stdin reaches EOF, output goes on
    client.run_forever(timeout=30)
    assert client.read_stdout() == "HELLO WEBSOCKET\nend\n"
    assert client.returncode == 0
    client.close()


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "base64.channel.k8s.io"])
def test_websocket_older_protocols(env: Env, sleeper: str, protocol: str) -> None:
    client = _ws_client(env.exec_url(sleeper, ["sh", "-c", "echo hi; exit 2"]), protocol)
    assert client.subprotocol == protocol
    raw = []
    while client.is_open():
        client.update(timeout=30)
        if client.peek_stdout():
            raw.append(client.read_stdout())
    client.close()
    if protocol.startswith("v4"):
        assert "".join(raw) == "hi\n"
        assert client.returncode == 2


def test_websocket_tty_resize_with_the_kubernetes_client(env: Env, sleeper: str) -> None:
    # kubectl exec -it over WebSocket (its default since 1.30): resizes on channel 4
    url = env.exec_url(
        sleeper, ["sh", "-c", "while read x; do stty size; done"], tty=True, stdin=True
    )
    client = _ws_client(url)
    try:
        client.write_channel(4, json.dumps({"Width": 100, "Height": 40}))
        out = ""
        for _ in range(20):  # the first lines may be answered before the resize is applied
            answers = len(re.findall(r"\d+ \d+\r?\n", out))
            client.write_stdin("x\n")
            for _ in range(30):  # each update waits up to 1 s for the next message
                client.update(timeout=1)
                if client.peek_stdout():
                    out += client.read_stdout(timeout=0)
                if len(re.findall(r"\d+ \d+\r?\n", out)) > answers:
                    break
            if "40 100" in out:
                break
        assert "40 100" in out, out
    finally:
        client.close()


def test_websocket_unknown_protocols_get_the_list(env: Env, sleeper: str) -> None:
    import websocket

    url = env.exec_url(sleeper, ["true"]).replace("http://", "ws://", 1)
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        websocket.create_connection(url, subprotocols=["v9.channel.k8s.io"], timeout=30)
    assert err.value.status_code == 403
    assert b"v5.channel.k8s.io" in (err.value.resp_body or b"")


def test_exec_with_a_tty_and_resize(env: Env, sleeper: str) -> None:
    url = env.exec_url(
        sleeper, ["sh", "-c", "while read x; do stty size; done"], tty=True, stdin=True
    )
    client = SpdyClient(url)
    try:
        error = client.open_stream({"streamType": "error"})
        stdin = client.open_stream({"streamType": "stdin"})
        stdout = client.open_stream({"streamType": "stdout"})
        resize = client.open_stream({"streamType": "resize"})
        for s in (error, stdin, stdout, resize):
            assert s.replied.wait(30)
        client.send(resize, b'{"Width":100,"Height":40}')
        for _ in range(20):
            mark = len(stdout.data)
            client.send(stdin, b"x\n")
            assert client.wait_for(lambda m=mark: b"\n" in stdout.data[m:].replace(b"x\r\n", b""))
            if b"40 100" in stdout.data:
                break
        assert b"40 100" in stdout.data
        client.send(stdin, b"", fin=True)
        assert error.ended.wait(30)
        assert json.loads(bytes(error.data)) == {"metadata": {}, "status": "Success"}
    finally:
        client.close()


def _attach_url(env: Env, cid: str, **kwargs: Any) -> str:
    kwargs.setdefault("stdout", True)
    return str(env.runtime.Attach(pb.AttachRequest(container_id=cid, **kwargs), timeout=30).url)


def _attach_streams(client: SpdyClient) -> tuple[Any, Any]:
    """Open the streams of an attach with stdin and stderr, as kubectl does (error, stdin,
    stdout, stderr); the stdin and stdout streams."""
    client.open_stream({"streamType": "error"})
    stdin = client.open_stream({"streamType": "stdin"})
    stdout = client.open_stream({"streamType": "stdout"})
    client.open_stream({"streamType": "stderr"})
    return stdin, stdout


def _wait_exit(env: Env, cid: str) -> pb.ContainerStatus:
    stream = env.runtime.GetContainerEvents(pb.GetEventsRequest())
    try:
        status = env.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
        if status.state == pb.CONTAINER_EXITED:
            return status
        for event in stream:
            if (
                event.container_id == cid
                and event.container_event_type == pb.CONTAINER_STOPPED_EVENT
            ):
                break
    finally:
        stream.cancel()
    return env.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status


def test_attach_with_stdin_once(env: Env) -> None:
    cid = env.container("once", ["sh", "-c", "cat; echo stdin-closed"], stdin=True, stdin_once=True)
    client = SpdyClient(_attach_url(env, cid, stdin=True, stderr=True))
    try:
        stdin, stdout = _attach_streams(client)
        assert stdin.replied.wait(30)
        client.send(stdin, b"hello attach\n")
        assert client.wait_for(lambda: b"hello attach\n" in stdout.data)
    finally:
        client.close()  # the first attach goes away: with stdin_once the container's stdin closes
    status = _wait_exit(env, cid)
    assert status.exit_code == 0
    log = env.pod_config.log_directory + "/once.log"
    with open(log) as f:
        assert "stdin-closed" in f.read()


def test_attach_without_stdin_once_leaves_stdin_open_for_the_next(env: Env) -> None:
    cid = env.container(
        "reader", ["sh", "-c", "while read line; do echo got:$line; done"], stdin=True
    )
    for word in (b"one", b"two"):  # the second attach finds stdin still open
        client = SpdyClient(_attach_url(env, cid, stdin=True, stderr=True))
        try:
            stdin, stdout = _attach_streams(client)
            assert stdin.replied.wait(30) and stdout.replied.wait(30)
            client.send(stdin, word + b"\n")
            seen = b"got:" + word
            assert client.wait_for(lambda o=stdout, w=seen: w in o.data), bytes(stdout.data)
        finally:
            client.close()
    status = env.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert status.state == pb.CONTAINER_RUNNING
    env.runtime.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))


def test_interactive_tty_container(env: Env) -> None:
    cid = env.container("tty", ["sh"], stdin=True, tty=True)
    client = SpdyClient(_attach_url(env, cid, stdin=True, tty=True))
    try:
        streams = {
            t: client.open_stream({"streamType": t}) for t in ("error", "stdin", "stdout", "resize")
        }
        assert all(s.replied.wait(30) for s in streams.values())
        client.send(streams["resize"], b'{"Width":90,"Height":30}')
        out = streams["stdout"]
        # The terminal echoes each line at once, before the shell has read it (or even
        # started): wait for what only the shell prints, the marker's arithmetic evaluated.
        for _ in range(20):
            mark = len(out.data)
            client.send(streams["stdin"], b"stty size; echo ran$((6*7))\n")
            assert client.wait_for(lambda m=mark: b"ran42" in out.data[m:]), bytes(out.data)
            if b"30 90" in out.data[mark:]:
                break
        assert b"30 90" in out.data
        client.send(streams["stdin"], b"exit 4\n")
        assert streams["error"].ended.wait(30)
    finally:
        client.close()
    assert _wait_exit(env, cid).exit_code == 4


def _listening(env: Env, cid: str, port: int) -> None:
    """Await the server in ``cid`` listening on ``port`` (each probe is a real exec, bounded)."""
    probe = ["sh", "-c", f"netstat -ltn | grep -q ':{port} '"]
    for _ in range(200):
        reply = env.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=probe, timeout=10))
        if reply.exit_code == 0:
            return
    raise AssertionError(f"nothing listens on {port} in {cid}")


@pytest.fixture(scope="module")
def echo_server(env: Env) -> str:
    cid = env.container(
        "echo", ["sh", "-c", "nc -ll -p 8080 -e cat & httpd -f -p '[::1]:8081' -h /"]
    )
    _listening(env, cid, 8080)
    _listening(env, cid, 8081)
    return cid


def _pf_url(env: Env, pod_id: str | None = None, ports: tuple[int, ...] = ()) -> str:
    request = pb.PortForwardRequest(pod_sandbox_id=pod_id or env.pod_id, port=list(ports))
    return str(env.runtime.PortForward(request, timeout=30).url)


def _forward(client: SpdyClient, port: int, request_id: int, payload: bytes) -> tuple[bytes, bytes]:
    headers = {"port": str(port), "requestID": str(request_id)}
    error = client.open_stream({"streamType": "error", **headers})
    data = client.open_stream({"streamType": "data", **headers})
    assert error.replied.wait(30) and data.replied.wait(30)
    client.send(error, b"", fin=True)  # what client-go does: it never writes on the error stream
    if payload:
        client.send(data, payload)
    client.send(data, b"", fin=True)
    assert data.ended.wait(30) and error.ended.wait(30)
    return bytes(data.data), bytes(error.data)


def test_port_forward_over_spdy(env: Env, echo_server: str) -> None:
    client = SpdyClient(_pf_url(env), protocols=("portforward.k8s.io",))
    try:
        assert client.protocol == "portforward.k8s.io"
        payload = b"through the pod's loopback\n" * 5000
        got, err = _forward(client, 8080, 0, payload)
        assert (got, err) == (payload, b"")
        # several connections on one session, and IPv6 localhost (httpd listens on ::1 only)
        got, err = _forward(client, 8081, 1, b"GET /nope HTTP/1.0\r\n\r\n")
        assert got.startswith(b"HTTP/1.") and err == b""
        got, err = _forward(client, 8080, 2, b"again\n")
        assert got == b"again\n"
        # a refused port: an error on the error stream, not a hung stream
        got, err = _forward(client, 9, 3, b"")
        assert got == b"" and b"error forwarding port 9" in err
    finally:
        client.close()


def test_port_forward_concurrent_connections(env: Env, echo_server: str) -> None:
    import threading

    # httpd (on ::1:8081) serves each connection in its own process, so eight at once are
    # eight real concurrent connections through one SPDY session.
    client = SpdyClient(_pf_url(env), protocols=("portforward.k8s.io",))
    results: dict[int, tuple[bytes, bytes]] = {}

    def one(n: int) -> None:
        results[n] = _forward(client, 8081, n, f"GET /nothing-{n} HTTP/1.0\r\n\r\n".encode())

    try:
        threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == list(range(8))
        for data, err in results.values():
            assert data.startswith(b"HTTP/1.") and b"404" in data.split(b"\r\n", 1)[0]
            assert err == b""
    finally:
        client.close()


def _read_line(sock: socket.socket) -> bytes:
    """Bytes from ``sock`` up to and including the first newline (the echo server's answer)."""
    got = b""
    while not got.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, f"the connection ended after {got!r}"
        got += chunk
    return got


def _ws_port_forward(env: Env, ports: str) -> Any:
    """A port-forward session for ``ports`` ("8080,9") opened by the ``kubernetes`` client over
    WebSocket, as kubectl port-forward connects."""
    from kubernetes.client import Configuration
    from kubernetes.stream.ws_client import portforward_call

    url = _pf_url(env).replace("http://", "ws://", 1) + f"?ports={ports}"
    return portforward_call(Configuration(), "GET", url)


def test_port_forward_over_websocket_with_the_kubernetes_client(env: Env, echo_server: str) -> None:
    pf = _ws_port_forward(env, "8080")
    try:
        sock = pf.socket(8080)
        sock.settimeout(30)
        sock.sendall(b"websocket port-forward\n")
        got = _read_line(sock)
        assert got == b"websocket port-forward\n"
        assert pf.error(8080) is None
    finally:
        pf.close()


def test_port_forward_tunnelled_spdy_over_websocket(env: Env, echo_server: str) -> None:
    # kubectl >= 1.31 port-forward: the SPDY protocol inside WebSocket binary messages
    url = _pf_url(env).replace("http://", "ws://", 1)
    tunnel = WebSocketTunnel(url, "SPDY/3.1+portforward.k8s.io")
    assert tunnel.subprotocol.lower() == "spdy/3.1+portforward.k8s.io"  # the client lowercases
    client = SpdyClient("", tunnel=tunnel)
    try:
        payload = b"tunnelled\n" * 10000
        assert _forward(client, 8080, 0, payload) == (payload, b"")
    finally:
        client.close()


def test_port_forward_to_a_host_network_pod(env: Env) -> None:
    import socket

    pod_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="hostnet", uid=uuid.uuid4().hex, namespace="e2e"),
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER)
            )
        ),
    )
    pod_id = env.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config), timeout=120)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        client = SpdyClient(_pf_url(env, pod_id.pod_sandbox_id), protocols=("portforward.k8s.io",))
        try:
            headers = {"port": str(port), "requestID": "0"}
            error = client.open_stream({"streamType": "error", **headers})
            data = client.open_stream({"streamType": "data", **headers})
            client.send(data, b"to the host")
            conn, _ = listener.accept()
            conn.settimeout(30)
            assert conn.recv(100) == b"to the host"
            conn.sendall(b"from the host")
            conn.close()
            assert data.ended.wait(30)
            assert bytes(data.data) == b"from the host"
            assert error.ended.wait(30)
        finally:
            client.close()
    finally:
        listener.close()
        env.runtime.RemovePodSandbox(
            pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id.pod_sandbox_id)
        )


def _count(env: Env, cid: str, pattern: str) -> int:
    reply = env.runtime.ExecSync(
        pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", f"ps | grep -c '{pattern}'"])
    )
    return int(reply.stdout.decode().strip() or 0)


def _await_count(env: Env, cid: str, pattern: str, want: int) -> int:
    """Probe (each probe a real ExecSync round trip, bounded) until ``want`` processes match."""
    got = -1
    for _ in range(200):
        got = _count(env, cid, pattern)
        if got == want:
            break
    return got


def _exec_dirs(env: Env) -> list[str]:
    d = env.daemon.state / "execs"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_a_client_that_goes_away_gets_its_process_killed(env: Env, sleeper: str) -> None:
    client = SpdyClient(env.exec_url(sleeper, ["sleep", "4242"]))
    streams = [client.open_stream({"streamType": t}) for t in ("error", "stdout", "stderr")]
    assert all(s.replied.wait(30) for s in streams)
    assert _await_count(env, sleeper, "[s]leep 4242", 1) == 1
    client.close()
    assert _await_count(env, sleeper, "[s]leep 4242", 0) == 0
    for _ in range(200):
        if not _exec_dirs(env):
            break
        _count(env, sleeper, "x")  # a round trip between looks
    assert _exec_dirs(env) == []


def test_a_container_that_exits_ends_the_session_with_its_status(env: Env) -> None:
    cid = env.container("short", ["sleep", "100000"])
    client = SpdyClient(env.exec_url(cid, ["sleep", "5000"]))
    try:
        streams = {t: client.open_stream({"streamType": t}) for t in ("error", "stdout", "stderr")}
        assert all(s.replied.wait(30) for s in streams.values())
        assert _await_count(env, cid, "[s]leep 5000", 1) == 1
        env.runtime.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))
        assert streams["error"].ended.wait(30)
        status = json.loads(bytes(streams["error"].data))
        assert status["reason"] == "NonZeroExitCode"
        assert int(status["details"]["causes"][0]["message"]) == 137
    finally:
        client.close()


def _daemon_rss_kb(env: Env) -> int:
    with open(f"/proc/{env.daemon.pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmRSS:")))


def test_a_stalled_client_blocks_nobody_and_grows_nothing(env: Env, sleeper: str) -> None:
    before = _daemon_rss_kb(env)
    stalled = SpdyClient(env.exec_url(sleeper, ["cat", "/dev/zero"]), read=False)
    try:
        for t in ("error", "stdout", "stderr"):
            stalled.open_stream({"streamType": t})
        # other sessions go on while it stalls (and /dev/zero would fill any unbounded
        # buffer by hundreds of MB meanwhile)
        for _ in range(10):
            assert remote_command(env.exec_url(sleeper, ["echo", "alive"])).stdout == b"alive\n"
        grown = _daemon_rss_kb(env) - before
        assert grown < 64_000, f"daemon RSS grew {grown} kB with a stalled client"
    finally:
        stalled.close()


def test_garbage_never_hurts_the_daemon(env: Env, sleeper: str) -> None:
    import random
    import socket

    url = env.exec_url(sleeper, ["true"])
    port = int(url.split(":")[2].split("/")[0])
    rng = random.Random(1)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(rng.randbytes(rng.randrange(1, 3000)))
            s.shutdown(socket.SHUT_WR)
            reply = s.recv(4096)
            assert reply == b"" or reply.startswith(b"HTTP/1.1 400")
    # an upgraded session that gets garbage ends; the daemon serves the next one
    client = SpdyClient(env.exec_url(sleeper, ["sleep", "1000"]))
    client.send_raw(b"\x80\x03\x00\x01" + rng.randbytes(500))
    assert client.goaway.wait(30) or client.closed.wait(30)
    client.close()
    assert remote_command(env.exec_url(sleeper, ["echo", "ok"])).stdout == b"ok\n"


def test_one_hundred_concurrent_sessions(env: Env, sleeper: str) -> None:
    import threading

    results: dict[int, bytes] = {}

    def one(n: int) -> None:
        url = env.exec_url(sleeper, ["cat"], stdin=True)
        results[n] = remote_command(url, stdin=f"session {n}\n".encode(), timeout=120).stdout

    threads = [threading.Thread(target=one, args=(n,)) for n in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert results == {n: f"session {n}\n".encode() for n in range(100)}


def _cli(env: Env, *args: str, stdin: bytes = b"") -> Any:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "cri.cli.main", "--address", str(env.daemon.socket), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )


def test_cli_exec_forwards_piped_stdin_and_the_exit_code(env: Env, sleeper: str) -> None:
    got = _cli(env, "exec", sleeper, "--", "sh", "-c", "tr a-z A-Z; exit 5", stdin=b"piped\n")
    assert (got.returncode, got.stdout, got.stderr) == (5, b"PIPED\n", b"")
    got = _cli(env, "exec", "-i", sleeper, "--", "sh", "-c", "echo err >&2; wc -c", stdin=b"abc")
    assert (got.returncode, got.stdout.strip(), got.stderr) == (0, b"3", b"err\n")


def test_cli_port_forward(env: Env, echo_server: str) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cri.cli.main", "--address", str(env.daemon.socket),
         "port-forward", env.pod_id, "0:8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("Forwarding from 127.0.0.1:") and line.strip().endswith("-> 8080")
        port = int(line.split(":")[1].split()[0])
        for n in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(f"cli {n}\n".encode())
                s.shutdown(socket.SHUT_WR)
                got = b""
                while chunk := s.recv(4096):
                    got += chunk
                assert got == f"cli {n}\n".encode()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130


def test_rpc_refusals_for_what_is_not_running(env: Env, sleeper: str) -> None:
    done = env.container("done", ["true"])
    assert _wait_exit(env, done).state == pb.CONTAINER_EXITED
    refusals: list[tuple[Any, Any]] = [
        (env.runtime.Exec, pb.ExecRequest(container_id=done, cmd=["true"], stdout=True)),
        (env.runtime.Attach, pb.AttachRequest(container_id=done, stdout=True)),
    ]
    for call, request in refusals:
        with pytest.raises(grpc.RpcError) as err:
            call(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, request
        assert "not running" in (err.value.details() or "")
    for request in (
        pb.AttachRequest(container_id=sleeper),
        pb.AttachRequest(container_id=sleeper, tty=True, stdout=True, stderr=True),
    ):
        with pytest.raises(grpc.RpcError) as err:
            env.runtime.Attach(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    for port in (0, 70000):
        with pytest.raises(grpc.RpcError) as err:
            env.runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=env.pod_id, port=[port]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "between 1 and 65535" in (err.value.details() or "")
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="stopped", uid=uuid.uuid4().hex, namespace="e2e")
    )
    pod_id = env.runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=config), timeout=120
    ).pod_sandbox_id
    try:
        env.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        with pytest.raises(grpc.RpcError) as err:
            env.runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod_id, port=[80]))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not ready" in (err.value.details() or "")
    finally:
        env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def test_websocket_base64_carries_the_bytes_and_the_status(env: Env, sleeper: str) -> None:
    import base64

    import websocket

    url = env.exec_url(sleeper, ["sh", "-c", "printf 'hi\\377\\n'; echo e >&2; exit 2"])
    ws = websocket.create_connection(
        url.replace("http://", "ws://", 1), subprotocols=["base64.channel.k8s.io"], timeout=30
    )
    got: dict[str, bytes] = {}
    try:
        assert ws.subprotocol == "base64.channel.k8s.io"
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            text = data.decode()  # base64: every message is text, channel digit first
            got[text[0]] = got.get(text[0], b"") + base64.b64decode(text[1:])
    finally:
        ws.close()
    assert got["1"] == b"hi\xff\n" and got["2"] == b"e\n"
    assert b"exit code 2" in got["3"]


def test_websocket_port_forward_two_ports_one_refused(env: Env, echo_server: str) -> None:
    pf = _ws_port_forward(env, "8080,9")
    try:
        refused = pf.socket(9)
        refused.settimeout(30)
        assert refused.recv(100) == b""  # the client closes a port whose error channel spoke
        assert "error forwarding port 9" in (pf.error(9) or "")
        sock = pf.socket(8080)
        sock.settimeout(30)
        sock.sendall(b"the other port\n")
        got = _read_line(sock)
        assert got == b"the other port\n"
    finally:
        pf.close()


@pytest.fixture(scope="module")
def solo_pod(env: Env) -> Iterator[tuple[str, str]]:
    """A pod of one interactive container (``kubectl run -it``'s shape): name and id."""
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="solo", uid=uuid.uuid4().hex, namespace="e2e"),
        log_directory=env.pod_config.log_directory,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
    )
    pod_id = env.runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=config), timeout=120
    ).pod_sandbox_id
    container = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="shell"),
        image=pb.ImageSpec(image=env.image),
        command=["sh"],
        stdin=True,
        tty=True,
        log_path="solo-shell.log",
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
    )
    cid = env.runtime.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=container, sandbox_config=config),
        timeout=60,
    ).container_id
    env.runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    yield "solo", cid
    env.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


class _Pty:
    """The CLI on a pseudo-terminal of its own, as a person runs it."""

    def __init__(self, env: Env, *args: str, rows: int, cols: int) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        self.master, slave = os.openpty()
        self.size(rows, cols)
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cri.cli.main", "--address", str(env.daemon.socket), *args],
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        )  # fmt: skip
        os.close(slave)
        self.out = bytearray()

    def size(self, rows: int, cols: int) -> None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text: bytes) -> None:
        import os

        os.write(self.master, text)

    def read_until(self, mark: int, want: bytes, *, timeout: float = 30) -> bool:
        """Read the terminal until ``want`` appears after offset ``mark`` (or the deadline,
        or the CLI's end)."""
        import os
        import select
        import time

        deadline = time.monotonic() + timeout
        while want not in self.out[mark:]:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the CLI closed the terminal
                    return want in self.out[mark:]
                if not chunk:
                    return want in self.out[mark:]
                self.out += chunk
        return True

    def ask_size(self) -> bytes:
        """Run ``stty size`` in the remote shell; its answer. What only the shell prints (the
        marker's arithmetic evaluated) shows the line ran; it is typed again when a shell
        that was still starting flushed it (busybox ash does, entering line editing)."""
        for _ in range(20):
            mark = len(self.out)
            self.type(b"stty size; echo ran$((6*7))\n")
            if self.read_until(mark, b"ran42", timeout=3):
                return bytes(self.out[mark:])
        raise AssertionError(bytes(self.out))

    def close(self) -> None:
        import os

        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        os.close(self.master)


def test_cli_exec_with_a_terminal_resizes_and_passes_the_exit_code(env: Env, sleeper: str) -> None:
    import signal

    term = _Pty(env, "exec", "-it", sleeper, "--", "sh", rows=24, cols=80)
    try:
        answers = b"".join(term.ask_size() for _ in range(3))
        assert b"24 80" in answers, answers
        term.size(40, 120)
        term.proc.send_signal(signal.SIGWINCH)  # what the kernel sends the terminal's owner
        for _ in range(20):
            if b"40 120" in term.ask_size():
                break
        assert b"40 120" in term.out
        term.type(b"exit 3\n")
        assert term.proc.wait(30) == 3
    finally:
        term.close()


def test_cli_exec_and_attach_take_a_pod(
    env: Env, sleeper: str, echo_server: str, solo_pod: tuple[str, str]
) -> None:
    name, cid = solo_pod  # the env's pod runs sleeper and echo_server: two containers
    got = _cli(env, "exec", name, "--", "sh", "-c", "echo via the pod")
    assert (got.returncode, got.stdout, got.stderr) == (0, b"via the pod\n", b"")
    several = _cli(env, "exec", env.pod_config.metadata.name, "--", "true")
    assert several.returncode != 0 and b"name the container" in several.stderr
    term = _Pty(env, "attach", "-it", name, rows=30, cols=90)
    try:
        for _ in range(20):
            if b"30 90" in term.ask_size():
                break
        assert b"30 90" in term.out
        term.type(b"exit 6\n")
        assert term.proc.wait(30) == 0  # attach ends with the container, as kubectl attach
    finally:
        term.close()
    assert _wait_exit(env, cid).exit_code == 6


def test_a_daemon_restart_ends_the_sessions_it_left(env: Env, sleeper: str) -> None:
    # Last in the module: it restarts the shared daemon. A session's exec runs under its own
    # conmon, so a crash leaves it running; the next start finds and ends it.
    client = SpdyClient(env.exec_url(sleeper, ["sleep", "6161"]))
    streams = [client.open_stream({"streamType": t}) for t in ("error", "stdout", "stderr")]
    assert all(s.replied.wait(30) for s in streams)
    assert _await_count(env, sleeper, "[s]leep 6161", 1) == 1
    env.daemon.kill()
    client.close()
    assert _exec_dirs(env) != []  # left behind by the crash, process still running
    env.daemon.restart()
    env.runtime = env.daemon.runtime
    assert _await_count(env, sleeper, "[s]leep 6161", 0) == 0
    assert _exec_dirs(env) == []
    assert remote_command(env.exec_url(sleeper, ["echo", "after"])).stdout == b"after\n"
