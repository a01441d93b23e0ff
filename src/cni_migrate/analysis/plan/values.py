"""Cilium Helm values per version and phase, the user's ``--values``/``--set`` merged in, and linting.

Phases:

* ``install`` - the offline strategy's one and only values file (old CNI and kube-proxy already gone);
* ``migration`` - rolling: Cilium next to the old CNI (custom CNI conf, no policy, legacy host routing,
  unmanaged-pod restart off: the Cilium migration guide's ``values-migration.yaml``);
* ``final`` - rolling, once every node runs on Cilium (the guide's ``values-final.yaml``);
* ``kpr`` - rolling, optional: kube-proxy replacement switched on globally after the per-node rollout.

Values are built for the exact Cilium minor: e.g. ``tunnel`` before 1.14, ``routingMode``/``tunnelProtocol``
after; ``kubeProxyReplacement`` ``strict``/``disabled`` before 1.14, ``true``/``false`` after (Section 3 of the
Cilium rule catalog). Keys a phase depends on for safety are *pinned*: a ``--values`` or ``--set`` that
contradicts them is an error naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from cni_migrate.analysis.lint.errors import LintInputError
from cni_migrate.analysis.lint.values import apply_set, merge_values
from cni_migrate.analysis.plan.options import PlanError, Resolved

Phase = Literal["install", "migration", "final", "kpr"]


# --- dict helpers ---------------------------------------------------------------------------------------------


def set_path(d: dict[str, Any], path: str | list[str], value: Any) -> None:
    parts = split_path(path) if isinstance(path, str) else path
    cur = d
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


def get_path(d: Mapping[str, Any], path: str) -> Any:
    cur: Any = d
    for p in split_path(path):
        if not isinstance(cur, Mapping) or p not in cur:
            return None
        cur = cur[p]
    return cur


def split_path(path: str) -> list[str]:
    """``a.b\\.c`` -> ``["a", "b.c"]`` (Helm's escaped dots)."""
    out: list[str] = []
    buf = ""
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path) and path[i + 1] == ".":
            buf += "."
            i += 2
            continue
        if ch == ".":
            out.append(buf)
            buf = ""
        else:
            buf += ch
        i += 1
    out.append(buf)
    return out


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge: maps merge key by key, everything else (lists included) is replaced."""
    out: dict[str, Any] = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def flatten(d: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k.replace('.', chr(92) + '.')}"
        if isinstance(v, Mapping) and v:
            yield from flatten(v, key + ".")
        else:
            yield key, v


# --- --set parsing ------------------------------------------------------------------------------------------


def parse_set(items: list[str]) -> dict[str, Any]:
    """Helm ``--set`` expressions, parsed exactly as Helm's strvals does (the lint engine's port)."""
    out: dict[str, Any] = {}
    for item in items:
        try:
            apply_set(out, item)
        except LintInputError as e:
            raise PlanError([str(e)]) from e
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as Helm would render them (``true`` and ``"true"`` are the same setting)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    return bool(a == b)


# --- version-valid values -------------------------------------------------------------------------------------


def kpr_value(r: Resolved, on: bool) -> Any:
    if r.version.kpr_is_bool:
        return on
    return "strict" if on else "disabled"


def _routing(r: Resolved, values: dict[str, Any], routing: str) -> None:
    v = r.version
    if routing == "native":
        if v.uses_routing_mode:
            values["routingMode"] = "native"
        else:
            values["tunnel"] = "disabled"
        return
    if v.uses_routing_mode:
        values["routingMode"] = "tunnel"
        values["tunnelProtocol"] = r.tunnel_protocol
        if r.tunnel_port is not None:
            values["tunnelPort"] = r.tunnel_port
    else:
        values["tunnel"] = r.tunnel_protocol
        if r.tunnel_port is not None:
            set_path(values, ["extraConfig", "tunnel-port"], str(r.tunnel_port))


def _ipam(r: Resolved, values: dict[str, Any]) -> None:
    if r.ipam == "cluster-pool":
        set_path(values, "ipam.mode", "cluster-pool")
        set_path(values, "ipam.operator.clusterPoolIPv4PodCIDRList", list(r.pool_cidrs))
        set_path(values, "ipam.operator.clusterPoolIPv4MaskSize", r.pool_mask)
    else:  # kubernetes, podcidrpools: node spec.podCIDRs
        set_path(values, "ipam.mode", "kubernetes")


def _lb(r: Resolved, values: dict[str, Any]) -> None:
    o = r.opts
    if o.lb_mode != "snat":
        set_path(values, "loadBalancer.mode", o.lb_mode)
        if r.routing == "tunnel" and r.tunnel_protocol == "geneve":
            set_path(values, "loadBalancer.dsrDispatch", "geneve")
    if o.maglev:
        set_path(values, "loadBalancer.algorithm", "maglev")
        set_path(values, "maglev.tableSize", o.maglev_table_size)
        set_path(values, "maglev.hashSeed", r.maglev_seed)
    if o.lb_acceleration != "disabled":
        set_path(values, "loadBalancer.acceleration", o.lb_acceleration)
    if r.lb_external_cluster_ip:
        set_path(values, "bpf.lbExternalClusterIP", True)
    if r.socket_lb_hostns:
        key = "socketLB.hostNamespaceOnly" if r.version.at_least(12) else "hostServices.hostNamespaceOnly"
        set_path(values, key, True)


def derived_values(r: Resolved, phase: Phase) -> tuple[dict[str, Any], dict[str, Any]]:
    """The planner's values for a phase, and the pinned subset (path -> value) user values may not change."""
    values: dict[str, Any] = {}
    pinned: dict[str, Any] = {}
    o = r.opts
    rolling = o.strategy == "rolling"
    # kube-proxy replacement is on in the offline install and the rolling "kpr" phase; during a rolling migration
    # it is on only when there is no kube-proxy at all.
    kpr_on = r.kpr if phase in ("install", "kpr") else (r.kpr and not r.remove_kube_proxy)

    if r.api_host is not None:
        values["k8sServiceHost"] = r.api_host
        values["k8sServicePort"] = r.api_port
    values["kubeProxyReplacement"] = kpr_value(r, kpr_on)
    pinned["kubeProxyReplacement"] = values["kubeProxyReplacement"]

    _routing(r, values, r.routing)
    if r.routing == "native":
        values["ipv4NativeRoutingCIDR"] = r.native_cidr
        if r.auto_direct_node_routes:
            values["autoDirectNodeRoutes"] = True
    _ipam(r, values)
    if rolling:
        for k in ("routingMode", "tunnelProtocol", "tunnelPort", "tunnel"):
            if k in values:
                pinned[k] = values[k]
        pinned["ipam.mode"] = "cluster-pool"
        pinned["ipam.operator.clusterPoolIPv4PodCIDRList"] = list(r.pool_cidrs)

    values["enableIPv4Masquerade"] = r.masquerade
    if kpr_on and r.masquerade:
        # BPF masquerading next to BPF NodePort (what cilium-cli sets with kube-proxy replacement): no iptables
        # masquerade racing BPF SNAT, and BPF host routing stays possible.
        set_path(values, "bpf.masquerade", True)
    if r.bgp == "cilium":
        set_path(values, "bgpControlPlane.enabled", True)
        pinned["bgpControlPlane.enabled"] = True
    if kpr_on:
        _lb(r, values)

    set_path(values, "hubble.enabled", o.hubble)
    if o.hubble and o.hubble_ui:
        set_path(values, "hubble.relay.enabled", True)
        set_path(values, "hubble.ui.enabled", True)

    if phase == "migration":
        migration = {
            "cni.customConf": True,
            "cni.uninstall": False,
            "policyEnforcementMode": "never",
            "bpf.hostLegacyRouting": True,
            "operator.unmanagedPodWatcher.restart": False,
        }
        for k, v in migration.items():
            set_path(values, k, v)
            pinned[k] = v
    elif phase in ("final", "kpr"):
        final = {
            "cni.customConf": False,
            "cni.uninstall": False,
            "policyEnforcementMode": "default",
            "bpf.hostLegacyRouting": bool(o.keep_host_legacy_routing),
            "operator.unmanagedPodWatcher.restart": True,
        }
        for k, v in final.items():
            set_path(values, k, v)
            pinned[k] = v
    return values, pinned


def values_for(r: Resolved, phase: Phase, artifact: str) -> tuple[dict[str, Any], list[str]]:
    """The merged values of a phase (planner < --values < --set, pinned keys enforced) and notes on overrides."""
    derived, pinned = derived_values(r, phase)
    base = r.opts.base_values
    sets = parse_set(r.opts.set_values)
    merged = merge_values(derived, base)
    for item in r.opts.set_values:
        try:
            apply_set(merged, item)
        except LintInputError as e:
            raise PlanError([str(e)]) from e
    problems: list[str] = []
    notes: list[str] = []
    derived_flat = dict(flatten(derived))
    for source_name, source in (("--values", base), ("--set", sets)):
        for key, value in flatten(source):
            if key in pinned and not _same(pinned[key], value):
                problems.append(
                    f"{source_name} {key}={value!r} contradicts {artifact}: this phase needs {key}={pinned[key]!r}"
                )
            elif key in derived_flat and not _same(derived_flat[key], value):
                notes.append(
                    f"{artifact}: {key}={value!r} from {source_name} replaces the derived {derived_flat[key]!r}"
                )
    if problems:
        raise PlanError(problems)
    user_keys = {k for k, _ in flatten(base)} | {k for k, _ in flatten(sets)}
    # Derived values that only follow from another setting the user has since overridden are dropped.
    if merged.get("enableIPv4Masquerade") is False and "bpf.masquerade" not in user_keys:
        bpf = merged.get("bpf")
        if isinstance(bpf, dict):
            bpf.pop("masquerade", None)
    return merged, notes
