"""Pod sandboxes: pinned namespaces (net, ipc, uts), and later the infra container, /dev/shm,
hostname, hosts and resolv.conf files that a pod's containers share."""
