"""ListMetricDescriptors and ListPodSandboxMetrics: the cAdvisor-compatible metrics of the
CRI (``cri/translate/metrics.py``), read from the cgroups, the writable-layer cache and the
pods' network namespaces."""

from __future__ import annotations

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc.deps import Deps
from cri.translate import metrics as tr


def list_metric_descriptors(
    deps: Deps, request: pb.ListMetricDescriptorsRequest
) -> pb.ListMetricDescriptorsResponse:
    return pb.ListMetricDescriptorsResponse(descriptors=tr.descriptors())


async def list_pod_sandbox_metrics(
    deps: Deps, request: pb.ListPodSandboxMetricsRequest
) -> pb.ListPodSandboxMetricsResponse:
    figures = await deps.pods.metric_figures(deps.pods.list_sandboxes(), fs_path=deps.images.fs_id)
    return pb.ListPodSandboxMetricsResponse(
        pod_metrics=[tr.pod_sandbox_metrics(f) for f in figures]
    )
