"""What RPC handlers may use: built once by the composition root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cri.config import Config
from cri.metrics import Metrics
from cri.nri.adaptation import Adaptation
from cri.rpc.listcache import ListCache
from cri.rpc.statuscache import StatusCache
from cri.streaming.requests import StreamingEndpoint
from runtime.cdi import CdiRegistry
from runtime.events.exchange import Exchange
from runtime.images.service import ImageService
from runtime.network.manager import NetworkManager
from runtime.pods.service import PodService
from runtime.tasks.features import HandlerFeatures


@dataclass(frozen=True, slots=True)
class Deps:
    """The services the CRI handlers call. Frozen: handlers never swap a dependency."""

    config: Config
    metrics: Metrics
    images: ImageService
    pods: PodService
    network: NetworkManager
    exchange: Exchange
    version: str
    cdi: CdiRegistry | None = None
    # None until the streaming server listens (and in tests that do not need it).
    streaming: StreamingEndpoint | None = None
    # what each runtime handler's OCI runtime stated at start (`<binary> features`)
    handler_features: Mapping[str, HandlerFeatures] = field(default_factory=dict)
    nri: Adaptation | None = None
    lists: ListCache = field(default_factory=ListCache)
    statuses: StatusCache = field(default_factory=StatusCache)
