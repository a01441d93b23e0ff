"""The PodCIDRPool IPAM operator: a lean asyncio controller (see docs/ipam-operator.md for why not kopf).

Run it with ``python -m cni_migrate.actions.ipam_operator``. The allocation logic is pure and lives in
``cni_migrate.analysis.ipam``; this package adds the runtime: informers, leader election on a Lease, fenced
conditional writes, pool status and finalizers, events, metrics, health endpoints and the admission webhook.
"""
