"""``pinnace doctor``'s node checks: what a node needs to run pods, each as one finding."""
