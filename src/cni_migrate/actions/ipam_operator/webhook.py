"""The validating admission webhook for PodCIDRPool, and the health/readiness/metrics handlers.

The checks are ``cni_migrate.analysis.ipam.validate_pool``; this module feeds them what only a running operator
knows: the other pools and, on update, the CIDRs nodes hold in the pool now (including blocks reserved for a write
in flight). Every replica answers from its own informer state, so the webhook works on standbys too. A replica
that has not loaded nodes and pools yet refuses (the API server then reports the message; its readiness probe
keeps it out of the Service meanwhile). A pool whose CIDRs pass is then recorded in the admission ledger
(``AdmissionLedger``), which refuses it if an overlapping pool was admitted moments ago that this replica's informer
has not seen yet (two replicas admitting overlapping pools at the same instant).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from cni_migrate.actions.ipam_operator.admission import AdmissionLedger
from cni_migrate.actions.ipam_operator.controller import Controller
from cni_migrate.actions.ipam_operator.httpserver import Handler, Request, Response
from cni_migrate.actions.ipam_operator.metrics import Metrics
from cni_migrate.analysis.ipam import PoolSpecError, admission_response, parse_pool, validate_pool

log = logging.getLogger("cni_migrate.ipam_operator.webhook")

VALIDATE_PATH = "/validate-podcidrpool"
NOT_READY = "the cni-migrate IPAM operator has not loaded nodes and pools yet; retry in a few seconds"


async def review_pool(controller: Controller, request: dict[str, Any], ledger: AdmissionLedger | None) -> list[str]:
    """The reasons to refuse one AdmissionReview request (empty: allowed)."""
    op = request.get("operation")
    obj = request.get("object") or {}
    if op not in ("CREATE", "UPDATE"):
        return []
    state = controller.state
    if state is None or not controller.ready:
        return [NOT_READY]
    name = str((obj.get("metadata") or {}).get("name") or request.get("name") or "")
    others = [p for p in state.pools if p.name != name]
    old = request.get("oldObject") or {}
    if op == "CREATE":
        errors = validate_pool(obj, others=others)
    else:
        errors = validate_pool(obj, others=others, old=old, held=controller.held_in_pool(name))
    if errors or ledger is None:
        return errors
    pool = parse_pool(obj)  # valid: validate_pool passed
    if op == "UPDATE":
        try:
            if parse_pool(old).networks == pool.networks:
                return []  # the CIDRs did not change: nothing new can overlap
        except PoolSpecError:
            pass
    return await ledger.admit(pool)


def make_routes(controller: Controller, metrics: Metrics, ledger: AdmissionLedger | None = None) -> dict[str, Handler]:
    async def validate(req: Request) -> Response:
        if req.method != "POST":
            return Response(405, b"POST an admission.k8s.io/v1 AdmissionReview\n")
        try:
            review = orjson.loads(req.body)
            request = review["request"]
            uid = str(request["uid"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return Response(400, b"expected an admission.k8s.io/v1 AdmissionReview with a request\n")
        errors = await review_pool(controller, request, ledger)
        op = str(request.get("operation", ""))
        metrics.admission.labels(op, "false" if errors else "true").inc()
        if errors:
            name = ((request.get("object") or {}).get("metadata") or {}).get("name", "?")
            log.info("refused %s of PodCIDRPool %s: %s", op, name, "; ".join(errors))
        body = orjson.dumps(admission_response(uid, errors))
        return Response(200, body, content_type="application/json")

    async def healthz(_req: Request) -> Response:
        return Response(200, b"ok\n")

    async def readyz(_req: Request) -> Response:
        if controller.ready:
            return Response(200, b"ok\n")
        return Response(503, b"nodes and pools not loaded yet\n")

    async def prometheus(_req: Request) -> Response:
        controller.sync_request_metrics()
        return Response(200, metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")

    return {
        VALIDATE_PATH: validate,
        "/validate": validate,
        "/healthz": healthz,
        "/livez": healthz,
        "/readyz": readyz,
        "/metrics": prometheus,
    }
