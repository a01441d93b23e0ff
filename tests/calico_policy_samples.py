"""Calico policies shared by the policy tests (CLI, plan, CRD acceptance): DNS allowed for every pod, web pods
reachable from the frontend on port 80, and one Cilium cannot express (a substring selector)."""

from __future__ import annotations

from typing import Any

V1 = "crd.projectcalico.org/v1"

ALLOW_DNS: dict[str, Any] = {
    "apiVersion": V1,
    "kind": "GlobalNetworkPolicy",
    "metadata": {"name": "default.allow-dns"},
    "spec": {
        "order": 10,
        "selector": "all()",
        "types": ["Egress"],
        "egress": [{"action": "Allow", "protocol": "UDP", "destination": {"ports": [53]}}],
    },
}
WEB_INGRESS: dict[str, Any] = {
    "apiVersion": V1,
    "kind": "NetworkPolicy",
    "metadata": {"name": "default.web-ingress", "namespace": "shop"},
    "spec": {
        "order": 100,
        "selector": "app == 'web'",
        "types": ["Ingress"],
        "ingress": [
            {
                "action": "Allow",
                "protocol": "TCP",
                "source": {"selector": "app == 'frontend'"},
                "destination": {"ports": [80]},
            }
        ],
    },
}
