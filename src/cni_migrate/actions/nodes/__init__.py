"""Node work: transports that run root shell scripts on nodes, and the node agent that inspects, cleans and
restores the old CNI's and kube-proxy's state on a node."""
