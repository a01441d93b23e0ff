"""Actions layer: the only code that writes to a cluster or a node (executor, IPAM operator, node agent)."""
