"""Calico NetworkPolicy / GlobalNetworkPolicy analysis (issue 14, in progress): parsing both API versions,
Calico's evaluation semantics, and Calico selectors as Cilium label selectors."""
