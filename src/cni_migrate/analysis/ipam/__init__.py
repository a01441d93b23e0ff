"""Node pod-CIDR IPAM by node selector: the ``PodCIDRPool`` CRD's logic, pure (no I/O, no clock, no randomness).

One module per concern (as Cilium's ``pkg/ipam``). The operator (``cni_migrate.actions.ipam_operator``) and the
``cni-migrate ipam`` commands both use this API; it is kept stable.

CRD manifest: ``deploy/crds/ipam.cni-migrate.io_podcidrpools.yaml`` (group ``ipam.cni-migrate.io``, version
``v1alpha1``, kind ``PodCIDRPool``, plural ``podcidrpools``, short name ``pcp``, cluster-scoped, status subresource).

``cidrset`` -- one CIDR cut into blocks (kube-controller-manager's cidrset, without its 16-bit limit)
    ``CIDRSet(cidr, block_prefix)``: ``allocate_next() -> Network`` (round-robin, deterministic; raises
    ``CIDRSetFull``), ``occupy(net) -> Occupation`` (kind exact / inside-block / spans-blocks / partial; raises
    ``CIDRSetError`` when outside), ``release(net) -> int``, ``is_allocated(net)``, ``allocated_count(net)``,
    ``counts() -> BlockCounts(capacity, allocated, free)``, ``block(i)``, ``allocated_blocks()``.

``pools`` -- the custom resource
    ``parse_pool(obj) -> PodCIDRPool`` (raises ``PoolSpecError`` whose ``errors`` name the field, e.g.
    ``spec.cidrs[1]: 10.0.0.0/33 is not a valid CIDR``), ``parse_pools(objs) -> (pools, errors)``,
    ``make_pool(name, cidrs, ipv4=, ipv6=, node_selector=, priority=, disabled=)``.
    ``PodCIDRPool``: ``name, spec, networks, generation, status``; ``families`` (``"ipv4"``/``"ipv6"``),
    ``networks_of(f)``, ``block_prefix(f)``, ``matches(labels)``, ``priority``, ``disabled``, ``manifest()``.
    Selection: ``select_pool(pools, labels)`` -- enabled pools whose selector matches, highest ``priority``, ties
    by name ascending; ``matching_pools``; ``pool_order_key``. ``PoolAllocator(pool)`` -- a family's CIDRs in
    spec order. Constants ``GROUP, VERSION, API_VERSION, KIND, PLURAL, IPV4, IPV6, DEFAULT_BLOCK_SIZE,
    BLOCK_SIZE_RANGE``.

``allocation`` -- the state machine (see its module doc for the protocol)
    ``NodeInfo(name, labels, spec_cidrs, annotations, deleting, uid)``, ``NodeInfo.from_object(node_dict)``.
    ``IPAMState(pools, nodes)``:
      ``occupy_existing() -> list[OccupyReport]`` (must run first; kinds foreign / misaligned / duplicate / overlap
      / invalid / inconsistent), ``upsert_node(node) -> list[OccupyReport]``,
      ``assign(name) -> Assignment | NoPoolMatches | PoolExhausted | AlreadyHasCIDR | LabelsNoLongerMatch |
      NodeTerminating`` (each with ``outcome`` and ``message``), ``cancel(assignment)`` (write failed),
      ``release(name) -> list[Network]`` (Node really gone), ``set_pools(pools) -> list[OccupyReport]``,
      ``status(pool) / statuses() -> PoolStatus`` (``status_document(observed_generation=, now=,
      previous_conditions=)`` gives the CR status), ``held_in_pool(pool)``, ``plan()``; lookups ``node(name)``,
      ``node_names``, ``held(name)``, ``assignment(name)``, ``pools`` (selection order), ``pool(name)``,
      ``select(labels)``, ``pools_touching(net)``, ``counts(pool, family)``, ``nodes_in_pool(pool)``.
    ``Assignment.patch("spec" | "annotation", legacy=True) -> dict`` (merge patch for the Node).
    Annotation keys: ``ANNOTATION_IPV4 / ANNOTATION_IPV6`` (``network.cilium.io/ipv4-pod-cidr``, ...),
    ``LEGACY_ANNOTATION_IPV4 / LEGACY_ANNOTATION_IPV6`` (``io.cilium.network.ipv4-pod-cidr``, ...).

``validation`` -- admission checks for the validating webhook
    ``validate_pool(obj, others=(), old=None, held=()) -> list[str]`` (empty = allowed): the spec's own rules,
    no overlap with ``others`` (the other existing pools), and on update (``old`` given) every CIDR in ``held``
    (the CIDRs nodes hold in the pool, ``IPAMState.held_in_pool``) stays inside, blockSize unchanged while held.
    ``validate_pool_delete(name, held_by) -> list[str]``; ``admission_response(uid, errors, warnings=())``.

``check`` -- the ``ipam check`` audit
    ``check_ipam(pools, nodes, pool_errors=()) -> list[Problem]`` (``cni_migrate.analysis.problems.Problem``;
    ids in ``check.PROBLEM_IDS``).

``calico_import`` -- Calico IPPools -> PodCIDRPool manifests
    ``import_calico_pools(ip_pools, ipv4_block_size=24, ipv6_block_size=80, keep_calico_block_size=False)
    -> CalicoImport(manifests, notes, issues)``.
"""

from __future__ import annotations

from cni_migrate.analysis.ipam.allocation import (
    ALL_POD_CIDR_ANNOTATIONS,
    ANNOTATION_IPV4,
    ANNOTATION_IPV6,
    LEGACY_ANNOTATION_IPV4,
    LEGACY_ANNOTATION_IPV6,
    POD_CIDR_ANNOTATIONS,
    AlreadyHasCIDR,
    Assignment,
    AssignResult,
    FamilyStatus,
    IPAMState,
    LabelsNoLongerMatch,
    NodeInfo,
    NodeTerminating,
    NoPoolMatches,
    NotRestoredError,
    OccupyReport,
    PoolExhausted,
    PoolStatus,
    UnknownNodeError,
    WriteMode,
)
from cni_migrate.analysis.ipam.calico_import import CalicoImport, ImportIssue, import_calico_pools
from cni_migrate.analysis.ipam.check import PROBLEM_IDS, check_ipam
from cni_migrate.analysis.ipam.cidrset import BlockCounts, CIDRSet, CIDRSetError, CIDRSetFull, Network, Occupation
from cni_migrate.analysis.ipam.pools import (
    API_VERSION,
    BLOCK_SIZE_RANGE,
    DEFAULT_BLOCK_SIZE,
    GROUP,
    IPV4,
    IPV6,
    KIND,
    PLURAL,
    VERSION,
    BlockSize,
    PodCIDRPool,
    PodCIDRPoolSpec,
    PoolAllocator,
    PoolSpecError,
    make_pool,
    matching_pools,
    parse_pool,
    parse_pools,
    pool_order_key,
    select_pool,
)
from cni_migrate.analysis.ipam.validation import admission_response, validate_pool, validate_pool_delete

__all__ = [
    "ALL_POD_CIDR_ANNOTATIONS",
    "ANNOTATION_IPV4",
    "ANNOTATION_IPV6",
    "API_VERSION",
    "BLOCK_SIZE_RANGE",
    "DEFAULT_BLOCK_SIZE",
    "GROUP",
    "IPV4",
    "IPV6",
    "KIND",
    "LEGACY_ANNOTATION_IPV4",
    "LEGACY_ANNOTATION_IPV6",
    "PLURAL",
    "POD_CIDR_ANNOTATIONS",
    "PROBLEM_IDS",
    "VERSION",
    "AlreadyHasCIDR",
    "AssignResult",
    "Assignment",
    "BlockCounts",
    "BlockSize",
    "CIDRSet",
    "CIDRSetError",
    "CIDRSetFull",
    "CalicoImport",
    "FamilyStatus",
    "IPAMState",
    "ImportIssue",
    "LabelsNoLongerMatch",
    "Network",
    "NoPoolMatches",
    "NodeInfo",
    "NodeTerminating",
    "NotRestoredError",
    "Occupation",
    "OccupyReport",
    "PodCIDRPool",
    "PodCIDRPoolSpec",
    "PoolAllocator",
    "PoolExhausted",
    "PoolSpecError",
    "PoolStatus",
    "UnknownNodeError",
    "WriteMode",
    "admission_response",
    "check_ipam",
    "import_calico_pools",
    "make_pool",
    "matching_pools",
    "parse_pool",
    "parse_pools",
    "pool_order_key",
    "select_pool",
    "validate_pool",
    "validate_pool_delete",
]
