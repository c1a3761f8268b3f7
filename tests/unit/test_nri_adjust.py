"""NRI adjustments on an OCI spec (ownership and conflicts), the plugin sync lock, Synchronize
chunks and plugin name/index rules."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cri.api.nri.v1alpha1 import api_pb2 as npb
from cri.nri import plugin as adaptation
from cri.nri.adjust import Adjustments
from cri.nri.synclock import SyncLock
from runtime.errors import FailedPrecondition


def spec() -> dict[str, Any]:
    return {
        "process": {"args": ["sleep", "1"], "env": ["PATH=/bin", "A=1"]},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "annotations": {"keep": "1", "drop": "2"},
        "linux": {"resources": {"memory": {"limit": 1}}},
    }


def test_every_kind_lands_in_the_spec() -> None:
    s = spec()
    adj = npb.ContainerAdjustment(
        annotations={"new": "x", "-drop": ""},
        mounts=[npb.Mount(destination="/data", source="/srv", options=["ro"])],
        env=[npb.KeyValue(key="B", value="2"), npb.KeyValue(key="-A")],
        rlimits=[npb.POSIXRlimit(type="RLIMIT_NOFILE", hard=10, soft=5)],
        args=["", "echo", "hi"],
    )
    adj.hooks.create_container.add(path="/bin/hook", args=["hook"])
    dev = adj.linux.devices.add(path="/dev/x", type="c", major=1, minor=3)
    dev.file_mode.value = 0o600
    adj.linux.oom_score_adj.value = 500
    adj.linux.resources.memory.limit.value = 1 << 20
    adj.linux.resources.cpu.shares.value = 512
    adj.linux.resources.cpu.cpus = "0"
    adj.linux.resources.hugepage_limits.add(page_size="2MB", limit=0)
    adj.linux.resources.unified["memory.high"] = "max"
    adj.linux.resources.pids.limit = 64
    Adjustments("c1").apply(s, adj, "10-a")
    assert s["annotations"] == {"keep": "1", "new": "x"}
    assert s["mounts"][-1] == {
        "destination": "/data",
        "type": "bind",
        "source": "/srv",
        "options": ["ro", "rbind"],
    }
    assert s["process"]["env"] == ["PATH=/bin", "B=2"]
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 5}]
    assert s["process"]["args"] == ["echo", "hi"]
    assert s["process"]["oomScoreAdj"] == 500
    assert s["hooks"]["createContainer"] == [{"path": "/bin/hook", "args": ["hook"]}]
    assert s["linux"]["devices"] == [
        {"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600}
    ]
    res = s["linux"]["resources"]
    assert res["memory"]["limit"] == 1 << 20 and res["cpu"] == {"shares": 512, "cpus": "0"}
    assert res["hugepageLimits"] == [{"pageSize": "2MB", "limit": 0}]
    assert res["unified"] == {"memory.high": "max"} and res["pids"] == {"limit": 64}
    assert res["devices"][-1]["major"] == 1


@pytest.mark.parametrize(
    "adj",
    [
        npb.ContainerAdjustment(env=[npb.KeyValue(key="X", value="1")]),
        npb.ContainerAdjustment(annotations={"k": "v"}),
        npb.ContainerAdjustment(mounts=[npb.Mount(destination="/m", source="/s")]),
        npb.ContainerAdjustment(rlimits=[npb.POSIXRlimit(type="RLIMIT_NPROC", hard=1, soft=1)]),
        npb.ContainerAdjustment(args=["true"]),
        npb.ContainerAdjustment(
            linux=npb.LinuxContainerAdjustment(
                resources=npb.LinuxResources(
                    memory=npb.LinuxMemory(limit=npb.OptionalInt64(value=5))
                )
            )
        ),
        npb.ContainerAdjustment(
            linux=npb.LinuxContainerAdjustment(oom_score_adj=npb.OptionalInt(value=1))
        ),
    ],
)
def test_two_plugins_on_one_field_conflict(adj: npb.ContainerAdjustment) -> None:
    adjustments = Adjustments("c1")
    adjustments.apply(spec(), adj, "10-a")
    with pytest.raises(FailedPrecondition, match=r"plugins '10-a' and '20-b' both tried to set"):
        adjustments.apply(spec(), adj, "20-b")


def test_removal_first_gives_up_the_claim_and_hooks_never_conflict() -> None:
    adjustments, s = Adjustments("c1"), spec()
    adjustments.apply(s, npb.ContainerAdjustment(env=[npb.KeyValue(key="X", value="1")]), "10-a")
    replace = npb.ContainerAdjustment(
        env=[npb.KeyValue(key="-X"), npb.KeyValue(key="X", value="2")]
    )
    replace.hooks.prestart.add(path="/bin/a")
    adjustments.apply(s, replace, "20-b")
    again = npb.ContainerAdjustment()
    again.hooks.prestart.add(path="/bin/b")
    adjustments.apply(s, again, "30-c")
    assert "X=2" in s["process"]["env"] and "X=1" not in s["process"]["env"]
    assert [h["path"] for h in s["hooks"]["prestart"]] == ["/bin/a", "/bin/b"]
    owners = adjustments.owning_plugins().owners["c1"]
    assert owners.compound[6].owners["X"] == "20-b"


def test_a_mount_is_removed_and_replaced_and_classes_are_applied() -> None:
    s = spec()
    s["mounts"].append({"destination": "/etc/hosts", "type": "bind", "source": "/a"})
    adjustments = Adjustments("c1")
    adjustments.apply(
        s,
        npb.ContainerAdjustment(
            mounts=[
                npb.Mount(destination="-/etc/hosts"),
                npb.Mount(destination="/proc", type="proc", source="proc", options=["nosuid"]),
            ]
        ),
        "10-a",
    )
    assert [m["destination"] for m in s["mounts"]] == ["/proc"]
    assert s["mounts"][0]["options"] == ["nosuid"]
    rdt = npb.ContainerAdjustment()
    rdt.linux.resources.rdt_class.value = "gold"
    adjustments.apply(s, rdt, "10-a")
    assert s["linux"]["intelRdt"] == {"closID": "gold"}
    clear = npb.ContainerAdjustment()
    clear.linux.resources.rdt_class.value = ""
    clear.linux.resources.blockio_class.value = ""
    s["linux"]["resources"]["blockIO"] = {"weight": 10}
    adjustments.apply(s, clear, "10-a")
    assert "intelRdt" not in s["linux"] and "blockIO" not in s["linux"]["resources"]
    blockio = npb.ContainerAdjustment()
    blockio.linux.resources.blockio_class.value = "slow"
    with pytest.raises(FailedPrecondition, match="no blockio classes are configured"):
        Adjustments("c1").apply(spec(), blockio, "20-b")


def test_unapplied_adjustments_are_refused_by_name() -> None:
    adj = npb.ContainerAdjustment(linux=npb.LinuxContainerAdjustment(sysctl={"a": "b"}))
    with pytest.raises(FailedPrecondition, match="sysctl"):
        Adjustments("c1").apply(spec(), adj, "10-a")


def test_plugin_names_and_indexes() -> None:
    adaptation.check_plugin_name("my-plugin_1.0+x")
    adaptation.check_plugin_index("05")
    for bad in ("", "a b", "a/b", "logger\n", "\nlogger"):
        with pytest.raises(ValueError, match="invalid plugin name"):
            adaptation.check_plugin_name(bad)
    for bad in ("5", "005", "a1", "10\n", "\uff11\uff10"):  # fullwidth digits
        with pytest.raises(ValueError, match="invalid plugin index"):
            adaptation.check_plugin_index(bad)
    assert adaptation.event_names(1 | 1 << 3) == ["RunPodSandbox", "CreateContainer"]


def test_synchronize_is_cut_into_chunks_under_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adaptation, "_SYNC_CHUNK_BYTES", 1000)
    pods = [npb.PodSandbox(id=f"p{i}", name="x" * 100) for i in range(5)]
    ctrs = [npb.Container(id=f"c{i}", name="y" * 300) for i in range(5)]
    chunks = adaptation.sync_chunks(pods, ctrs)
    assert len(chunks) > 1
    assert [p.id for ch in chunks for p in ch[0]] == [p.id for p in pods]
    assert [c.id for ch in chunks for c in ch[1]] == [c.id for c in ctrs]
    for ch_pods, ch_ctrs in chunks:
        size = npb.SynchronizeRequest(pods=ch_pods, containers=ch_ctrs, more=True).ByteSize()
        assert size <= 1000
    assert adaptation.sync_chunks([], []) == [([], [])]


async def test_sync_lock_waits_for_creations_and_holds_new_ones() -> None:
    lock, order = SyncLock(), []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def creation(name: str, hold: asyncio.Event | None = None) -> None:
        async with lock.shared():
            order.append(f"{name} in")
            if hold is not None:
                first_in.set()
                await hold.wait()
            order.append(f"{name} out")

    async def sync() -> None:
        async with lock.exclusive():
            order.append("sync")

    a = asyncio.ensure_future(creation("a", release))
    await first_in.wait()
    s = asyncio.ensure_future(sync())
    await asyncio.sleep(0)  # let sync queue up behind a
    b = asyncio.ensure_future(creation("b"))
    await asyncio.sleep(0)
    assert order == ["a in"]  # b waits behind the queued sync
    release.set()
    await asyncio.gather(a, s, b)
    assert order == ["a in", "a out", "sync", "b in", "b out"]


async def test_sync_lock_cancelled_waiter_leaves_it_usable() -> None:
    lock = SyncLock()
    async with lock.exclusive():
        waiter = asyncio.ensure_future(lock.shared().__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    async with lock.exclusive():
        pass
    async with lock.shared():
        pass


def test_plugin_calls_are_counted_and_timed() -> None:
    from cri.metrics import Metrics

    m = Metrics()
    m.record_nri("10-a", "CreateContainer", "ok", 0.002)
    m.record_nri("10-a", "CreateContainer", "timeout", 10.0)
    labels = {"plugin": "10-a", "operation": "CreateContainer"}
    total = "pinnace_nri_plugin_invocations_total"
    assert m.registry.get_sample_value(total, {**labels, "result": "ok"}) == 1
    assert m.registry.get_sample_value(total, {**labels, "result": "timeout"}) == 1
    count = m.registry.get_sample_value(
        "pinnace_nri_plugin_duration_seconds_count", {"operation": "CreateContainer"}
    )
    assert count == 2


class RecordingInjector:
    """A DeviceInjector double: records what it was asked to inject."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def inject(self, spec: dict[str, Any], names: list[str]) -> None:
        self.asked.append(list(names))
        spec.setdefault("process", {}).setdefault("env", []).append("CDI=" + ",".join(names))


def test_cdi_devices_and_seccomp_from_plugins() -> None:
    adjustments, s = Adjustments("c1"), spec()
    first = npb.ContainerAdjustment(CDI_devices=[npb.CDIDevice(name="v.com/gpu=0")])
    second = npb.ContainerAdjustment(CDI_devices=[npb.CDIDevice(name="v.com/gpu=1")])
    second.linux.seccomp_policy.default_action = "SCMP_ACT_ALLOW"
    second.linux.seccomp_policy.syscalls.add(names=["mkdir"], action="SCMP_ACT_ERRNO")
    adjustments.apply(s, first, "10-a")
    adjustments.apply(s, second, "20-b")
    injector = RecordingInjector()
    adjustments.inject_cdi(s, injector)
    assert injector.asked == [["v.com/gpu=0", "v.com/gpu=1"]]
    assert s["linux"]["seccomp"] == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    with pytest.raises(FailedPrecondition, match="both tried to set cdi device"):
        adjustments.apply(s, first, "30-c")


def test_updates_of_one_field_by_two_plugins_conflict() -> None:
    claims = Adjustments("c1")
    res = npb.LinuxResources(cpu=npb.LinuxCPU(shares=npb.OptionalUInt64(value=2)))
    claims.claim_resources(res, "10-a")
    claims.claim_resources(npb.LinuxResources(cpu=npb.LinuxCPU(cpus="1")), "20-b")
    with pytest.raises(FailedPrecondition, match="cpu shares"):
        claims.claim_resources(res, "20-b")
