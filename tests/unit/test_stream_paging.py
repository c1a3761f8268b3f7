"""Pages of the Stream* RPCs: every item once, in order, no page over its size."""

from __future__ import annotations

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc.paging import pages


def _sandboxes(n: int, *, label_bytes: int = 0) -> list[pb.PodSandbox]:
    return [
        pb.PodSandbox(id=f"{i:064x}", labels={"big": "x" * label_bytes}, created_at=i)
        for i in range(n)
    ]


def test_pages_keep_every_item_in_order_and_stay_under_the_byte_limit() -> None:
    items = _sandboxes(3000, label_bytes=1000)
    split = list(pages(items, max_bytes=256 * 1024, max_items=10_000))
    assert [x for page in split for x in page] == items
    assert len(split) > 10
    for page in split:
        message = pb.StreamPodSandboxesResponse(pod_sandboxes=page)
        assert message.ByteSize() <= 256 * 1024


def test_pages_hold_at_most_max_items() -> None:
    split = list(pages(_sandboxes(1001), max_items=500))
    assert [len(p) for p in split] == [500, 500, 1]


def test_an_item_bigger_than_a_page_goes_alone() -> None:
    items = _sandboxes(3, label_bytes=5000)
    split = list(pages(items, max_bytes=1000))
    assert [len(p) for p in split] == [1, 1, 1]


def test_an_empty_list_is_one_empty_page() -> None:
    assert list(pages([])) == [[]]


def test_thousands_of_containers_fit_grpcs_default_message_size() -> None:
    containers = [
        pb.Container(
            id=f"{i:064x}",
            pod_sandbox_id=f"{i:064x}",
            labels={f"io.kubernetes.label{j}": "v" * 50 for j in range(10)},
            annotations={f"io.kubernetes.annotation{j}": "a" * 100 for j in range(10)},
        )
        for i in range(5000)
    ]
    assert pb.ListContainersResponse(containers=containers).ByteSize() > 4 * 1024 * 1024
    for page in pages(containers):
        assert pb.StreamContainersResponse(containers=page).ByteSize() < 4 * 1024 * 1024
