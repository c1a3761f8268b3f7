"""Figures the kubelet reads back that are not cgroup files: writable-layer usage (walked in
the background, served from a cache), per-interface network counters of a pod's network
namespace, and the cAdvisor-style metric readings built from both and the cgroups."""
