"""Node-level work as data: what to save before touching a node, and how to clean a CNI off it.

Every destructive command names the node state it removes; the backup commands name the state they save, so
"nothing is removed before it is saved" can be checked on the plan itself (see :mod:`.invariants`).
"""

from __future__ import annotations

from cni_migrate.analysis.plan.model import NodeCommand
from cni_migrate.analysis.plan.options import Resolved

CNI_DIR = "/etc/cni/net.d"


def old_cni_conf_globs(r: Resolved) -> list[str]:
    if r.old_cni == "flannel":
        return ["*flannel*"]
    if r.old_cni == "canal":
        return ["*canal*", "*calico*", "*flannel*"]
    if r.old_cni == "calico":
        return ["*calico*"]
    return []


def node_backup_commands(r: Resolved, node_dir: str) -> list[NodeCommand]:
    """Save everything the cleanup may remove: CNI configuration, iptables/ip6tables, ipsets, IPVS, routes, links,
    loaded modules and the old CNI's state directories."""
    ipvs = r.facts.kube_proxy.mode.value == "ipvs"
    cmds = [
        NodeCommand(
            run=f"mkdir -p {node_dir} && cp -a {CNI_DIR} {node_dir}/cni-net.d",
            description="copy the CNI configuration directory",
            saves=["cni-config"],
        ),
        NodeCommand(
            run=f"iptables-save > {node_dir}/iptables.rules && ip6tables-save > {node_dir}/ip6tables.rules",
            description="save the iptables and ip6tables rules",
            saves=["iptables"],
        ),
        NodeCommand(
            run=f"ip route show table all > {node_dir}/routes.txt && "
            f"ip -6 route show table all > {node_dir}/routes6.txt",
            description="record the routing tables",
            saves=["routes"],
        ),
        NodeCommand(
            run=f"ip -d link show > {node_dir}/links.txt",
            description="record the network links",
            saves=["links"],
        ),
        NodeCommand(
            run=f"(ipset save > {node_dir}/ipsets.txt 2>/dev/null || true)",
            description="save the ipsets (absent tools are fine)",
            saves=["ipsets"],
        ),
        NodeCommand(
            run=f"(lsmod || cat /proc/modules || echo no module list) > {node_dir}/modules.txt 2>/dev/null",
            description="record loaded modules (a kernel without loadable modules has no list)",
            saves=["kernel-modules"],
        ),
        NodeCommand(
            run=f"tar -C / -czf {node_dir}/cni-state.tgz --ignore-failed-read "
            "var/lib/calico var/run/calico run/flannel var/lib/cni 2>/dev/null || true",
            description="archive the old CNI's state directories (host-local IPAM, Calico and Flannel state)",
            saves=["cni-state"],
        ),
    ]
    if ipvs:
        cmds.append(
            NodeCommand(
                run=f"(ipvsadm-save -n > {node_dir}/ipvs.rules 2>/dev/null || true)",
                description="save the IPVS rules kube-proxy (ipvs mode) programmed",
                saves=["ipvs"],
            )
        )
    return cmds


def iptables_owned_prefixes(r: Resolved, *, kube_proxy: bool) -> list[str]:
    """Chain-name prefixes of the old CNI (Calico ``cali-``, Flannel ``FLANNEL-``) and of kube-proxy (``KUBE-``,
    minus kubelet's chains, see :func:`iptables_clean_shell`)."""
    parts: list[str] = []
    if r.old_cni in ("calico", "canal"):
        parts.append("cali-")
    if r.old_cni in ("flannel", "canal"):
        parts.append("FLANNEL-")
    if kube_proxy:
        parts.append("KUBE-")
    return parts


# kubelet's chains (pkg/kubelet/kubelet_network_linux.go), kept: KUBE-FIREWALL is kubelet's in IPv4 only.
_KUBELET_KEEP = {"4": "^KUBE-(IPTABLES-HINT|KUBELET-CANARY|FIREWALL)$", "6": "^KUBE-(IPTABLES-HINT|KUBELET-CANARY)$"}
# Per table: remember the owned chains (declared before any rule), turn each rule of another chain that jumps or
# goes to one of them into a -D, then flush and delete the owned chains; nothing else is in the output, and
# iptables-restore --noflush applies it as one transaction per table.
_AWK = (
    '/^\\*/ {print; n=0; split("", o); next} '
    "/^:/ {c=substr($1,2); if (c ~ own && c !~ keep) {o[c]=1; ch[++n]=c}; next} "
    '/^-A / {if ($2 in o) next; for (i=3;i<NF;i++) if (($i=="-j"||$i=="-g") && ($(i+1) in o)) '
    '{sub(/^-A /,"-D "); print; break}; next} '
    '/^COMMIT/ {for (i=1;i<=n;i++) print "-F", ch[i]; for (i=1;i<=n;i++) print "-X", ch[i]; print}'
)


def iptables_clean_shell(prefixes: list[str]) -> str:
    """The by-hand equivalent of the agent's iptables clean: every backend present (legacy, nft, the default),
    IPv4 and IPv6, only the owned chains and the jumps to them (no table is rewritten or flushed)."""
    own = "^(" + "|".join(prefixes) + ")"
    keep = _KUBELET_KEEP if "KUBE-" in prefixes else {"4": "^$", "6": "^$"}
    loops = []
    for v, tool in (("4", "iptables"), ("6", "ip6tables")):
        loops.append(
            f"for b in {tool}-legacy {tool}-nft {tool}; do command -v $b-save >/dev/null 2>&1 || continue; "
            f"$b-save | awk -v own='{own}' -v keep='{keep[v]}' '{_AWK}' | $b-restore --noflush; done"
        )
    return "; ".join(loops)


AGENT_GUARD = "command -v cni-migrate >/dev/null 2>&1"


def agent_clean_command(r: Resolved, node_dir: str, *, kube_proxy: bool) -> NodeCommand | None:
    """The node agent's clean (``cni-migrate node clean``, docs/node-agent.md): exactly the old CNI's and
    kube-proxy's state, everything else untouched, with its own checksummed backup. Runs where the agent is
    installed; the shell commands after it are the by-hand equivalent and run only where it is not."""
    old = r.old_cni if r.old_cni in ("calico", "flannel", "canal") else "none"
    if old == "none" and not kube_proxy:
        return None
    args = f"--old-cni {old}" + (" --kube-proxy" if kube_proxy else "")
    return NodeCommand(
        run=f"if {AGENT_GUARD}; then cni-migrate node clean {args} --backup-dir {node_dir}/agent; fi",
        description="the node agent removes exactly the old CNI's"
        + (" and kube-proxy's" if kube_proxy else "")
        + " state (its backup: cni-migrate node restore); the commands below run only where it is not installed",
        removes=["cni-config", "routes", "links", "iptables", "ipsets", "cni-state"]
        + (["ipvs"] if kube_proxy and r.facts.kube_proxy.mode.value == "ipvs" else []),
    )


def _unless_agent(cmd: NodeCommand) -> NodeCommand:
    return cmd.model_copy(update={"run": f"{AGENT_GUARD} || {{ {cmd.run}; }}"})


def old_cni_cleanup_commands(r: Resolved, node_dir: str, *, kube_proxy: bool) -> list[NodeCommand]:
    """The node agent's clean, then the shell equivalent for nodes without the agent (guarded, so it runs only
    there): what the old CNI (and kube-proxy when ``kube_proxy``) left on a node, as the lossy seed removes it,
    with the configuration files moved into the node backup instead of deleted."""
    agent = agent_clean_command(r, node_dir, kube_proxy=kube_proxy)
    shell = _shell_cleanup_commands(r, node_dir, kube_proxy=kube_proxy)
    return [agent, *map(_unless_agent, shell)] if agent else shell


def _shell_cleanup_commands(r: Resolved, node_dir: str, *, kube_proxy: bool) -> list[NodeCommand]:
    cmds: list[NodeCommand] = []
    globs = old_cni_conf_globs(r)
    if globs:
        names = " -o ".join(f"-name '{g}'" for g in [*globs, "*.cilium_bak"])
        cmds.append(
            NodeCommand(
                run=f"mkdir -p {node_dir}/removed-cni && find {CNI_DIR} -maxdepth 1 -type f \\( {names} \\) "
                f"-exec mv -t {node_dir}/removed-cni {{}} +",
                description="move the old CNI's configuration files out of the CNI directory (kept in the backup)",
                removes=["cni-config"],
            )
        )
    calico = r.old_cni in ("calico", "canal")
    flannel = r.old_cni in ("flannel", "canal")
    if calico:
        # BIRD's routes, then Felix's own (blackhole block routes, VXLAN routes), which it installs as protocol 80
        for proto, what in (
            ("bird", "remove the routes Calico's BIRD installed"),
            ("80", "remove the routes Calico's Felix installed (protocol 80)"),
        ):
            cmds.append(
                NodeCommand(
                    run=f"ip route flush proto {proto}",
                    description=what,
                    removes=["routes"],
                    ignore_errors=True,
                )
            )
    link_patterns = []
    if calico:
        link_patterns += [r"cali[0-9a-f]+", r"vxlan\.calico", r"vxlan-v6\.calico"]
    if flannel:
        vni = r.facts.cni.flannel.vni.value if r.facts.cni.flannel and r.facts.cni.flannel.vni.known else 1
        link_patterns += [rf"flannel\.{vni}", "cni0"]
    if kube_proxy and r.facts.kube_proxy.mode.value == "ipvs":
        link_patterns.append("kube-ipvs0")
    if link_patterns:
        regex = "|".join(link_patterns)
        cmds.append(
            NodeCommand(
                run="ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | "
                f"grep -E '^({regex})$' | xargs -r -n1 ip link delete",
                description="delete the old CNI's interfaces"
                + (" and kube-proxy's kube-ipvs0" if "kube-ipvs0" in link_patterns else ""),
                removes=["links"],
            )
        )
    prefixes = iptables_owned_prefixes(r, kube_proxy=kube_proxy)
    if prefixes:
        cmds.append(
            NodeCommand(
                run=iptables_clean_shell(prefixes),
                description="drop the old CNI's"
                + (" and kube-proxy's" if kube_proxy else "")
                + " iptables chains and the jumps to them (every backend, IPv4 and IPv6; other chains untouched)",
                removes=["iptables"],
            )
        )
    if calico:
        cmds.append(
            NodeCommand(
                run="(ipset list -n 2>/dev/null | grep -E '^cali' | xargs -r -n1 ipset destroy) || true",
                description="destroy Calico's ipsets",
                removes=["ipsets"],
            )
        )
    if kube_proxy and r.facts.kube_proxy.mode.value == "ipvs":
        cmds.append(
            NodeCommand(
                run="if command -v ipvsadm >/dev/null; then ipvsadm -C; else echo 'no ipvsadm: IPVS left'; fi",
                description="clear kube-proxy's IPVS rules (needs ipvsadm on the node)",
                removes=["ipvs"],
            )
        )
    if calico:
        cmds.append(
            NodeCommand(
                run="modprobe -r ipip",
                description="unload the ipip module (removes tunl0)",
                removes=["kernel-modules", "links"],
                ignore_errors=True,
            )
        )
    cmds.append(
        NodeCommand(
            run="rm -rf /var/lib/calico /var/run/calico /run/flannel /var/lib/cni/networks/k8s-pod-network "
            "/var/lib/cni/networks/cbr0",
            description="remove the old CNI's state directories (archived in the backup)",
            removes=["cni-state"],
        )
    )
    return cmds


def kube_proxy_node_cleanup(r: Resolved) -> list[NodeCommand]:
    """After kube-proxy left a node: its iptables chains (and IPVS state), as Cilium's kube-proxy-free guide says."""
    cmds = [
        NodeCommand(
            run=iptables_clean_shell(["KUBE-"]),
            description="drop kube-proxy's KUBE-* iptables chains and the jumps to them (kubelet's stay)",
            removes=["iptables"],
        )
    ]
    if r.facts.kube_proxy.mode.value == "ipvs":
        cmds.append(
            NodeCommand(
                run="if command -v ipvsadm >/dev/null; then ipvsadm -C; else echo 'no ipvsadm: IPVS left'; fi",
                description="clear kube-proxy's IPVS rules (needs ipvsadm on the node)",
                removes=["ipvs"],
            )
        )
        cmds.append(
            NodeCommand(
                run="ip link delete kube-ipvs0", description="delete kube-ipvs0", removes=["links"], ignore_errors=True
            )
        )
    return cmds


def restore_commands(node_dir: str) -> list[NodeCommand]:
    """Put a node's CNI configuration and iptables rules back from its backup (rollback of a cleanup); the
    agent's restore first where the agent made the cleanup."""
    return [
        NodeCommand(
            run=f"if {AGENT_GUARD} && [ -d {node_dir}/agent ]; then "
            f"cni-migrate node restore --backup-dir {node_dir}/agent; fi",
            description="the node agent puts back what its clean removed (checksums verified first)",
        ),
        NodeCommand(
            run=f"cp -a {node_dir}/cni-net.d/. {CNI_DIR}/ && rm -f {CNI_DIR}/05-cilium.conflist",
            description="restore the CNI configuration files and remove Cilium's",
        ),
        NodeCommand(
            run=f"iptables-restore < {node_dir}/iptables.rules && ip6tables-restore < {node_dir}/ip6tables.rules",
            description="restore the saved iptables rules",
        ),
        NodeCommand(
            run=f"tar -C / -xzf {node_dir}/cni-state.tgz 2>/dev/null || true",
            description="restore the old CNI's state directories",
        ),
    ]
