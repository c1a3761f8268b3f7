"""Pod networking with CNI: config loading (``conf``), plugin execution (``cni``), results
(``result``) and the event-driven ``NetworkManager`` (``manager``)."""

from runtime.network.cni import Attachment, CniExecutor, CniPluginError, pod_args
from runtime.network.conf import ConfigLoad, NetworkConfig, PluginConf, load_default
from runtime.network.manager import NetworkManager, NetworkStatus
from runtime.network.result import CniResult, Route

__all__ = [
    "Attachment",
    "CniExecutor",
    "CniPluginError",
    "CniResult",
    "ConfigLoad",
    "NetworkConfig",
    "NetworkManager",
    "NetworkStatus",
    "PluginConf",
    "Route",
    "load_default",
    "pod_args",
]
