"""State put on the simulated nodes by hand, where no real component can make it here.

* ``host_state``: the node's own state that ``clean`` must leave byte-identical: the host firewall (INPUT rules in
  both iptables backends and IPv6), Docker's chains and docker0, a static route, an ipset, an nftables table, a
  CNI file of another plugin.
* ``kubelet_chains``: what kubelet creates (pkg/kubelet/kubelet_network_linux.go, v1.34.4): KUBE-IPTABLES-HINT
  (mangle), KUBE-KUBELET-CANARY (mangle, nat, filter), KUBE-FIREWALL with its localnet DROP rule and the jumps
  from INPUT and OUTPUT. kubelet stays after the migration; its chains must stay too.
* ``calico_state``: what calico-node writes, since Felix and BIRD cannot be built here (Felix needs its BPF
  toolchain). Each element cites the Calico code (projectcalico/calico, v3.2x) that creates it.
"""

from __future__ import annotations

from cni_migrate_testbed.netns import NetnsLab, NodeNs

HOST_RULES = """*filter
:HOST-IN - [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -j HOST-IN
-A HOST-IN -s 10.0.0.0/8 -p tcp -m tcp --dport 9100 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
"""

HOST_RULES_LEGACY = """*filter
:ADMIN - [0:0]
-A INPUT -s 192.0.2.0/24 -j ADMIN
-A ADMIN -j LOG --log-prefix "admin: "
COMMIT
"""

HOST_RULES_V6 = """*filter
-A INPUT -p ipv6-icmp -j ACCEPT
COMMIT
"""


def host_state(lab: NetnsLab, node: NodeNs) -> None:
    lab.run(node, ["iptables-nft-restore", "--noflush"], stdin=HOST_RULES)
    lab.run(node, ["iptables-legacy-restore", "--noflush"], stdin=HOST_RULES_LEGACY)
    lab.run(node, ["ip6tables-nft-restore", "--noflush"], stdin=HOST_RULES_V6)
    lab.sh(
        node,
        """
        ip link add docker0 type bridge
        ip addr add 172.17.0.1/16 dev docker0
        ip link set docker0 up
        ip route add 10.99.0.0/16 via 192.168.77.1 dev eth0 onlink
        ipset create host-allow hash:net
        ipset add host-allow 198.51.100.0/24
        nft add table inet host-fw
        nft add chain inet host-fw input '{ type filter hook input priority 10; policy accept; }'
        nft add rule inet host-fw input tcp dport 10250 counter accept
        """,
    )
    (node.root / "etc/cni/net.d/99-loopback.conf").write_text(
        '{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}\n'
    )


KUBELET = """*mangle
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:KUBE-FIREWALL - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-I INPUT 1 -j KUBE-FIREWALL
-I OUTPUT 1 -j KUBE-FIREWALL
-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
"""


KUBELET_V6 = """*mangle
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
"""


def kubelet_chains(lab: NetnsLab, node: NodeNs) -> None:
    """IPv4 and IPv6 alike, except KUBE-FIREWALL: kubelet makes it for IPv4 only."""
    lab.run(node, ["iptables-nft-restore", "--noflush"], stdin=KUBELET)
    lab.run(node, ["ip6tables-nft-restore", "--noflush"], stdin=KUBELET_V6)


# Felix's chains and the hooks from the built-in chains (felix/rules/static.go: StaticFilterTableChains,
# StaticNATTableChains, StaticRawTableChains, StaticMangleTableChains; the hook rules carry "cali:<hash>"
# comments, felix/iptables/table.go), per-workload chains cali-tw-/cali-fw-<iface> (felix/rules/endpoints.go),
# and the ipsets they match (felix/rules/static.go uses cali40all-ipam-pools, cali40masq-ipam-pools,
# cali40this-host; felix/ipsets/ipsets.go names sets "cali" + "40"/"60" + name).
CALICO_IPTABLES = """*raw
:cali-PREROUTING - [0:0]
:cali-OUTPUT - [0:0]
:cali-rpf-skip - [0:0]
-A PREROUTING -m comment --comment "cali:6gwbT8clXdHdC1b1" -j cali-PREROUTING
-A OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" -j cali-OUTPUT
-A cali-PREROUTING -m comment --comment "cali:XFX5xbM8B9qR10JG" -j MARK --set-xmark 0x0/0xf0000
-A cali-PREROUTING -i cali+ -m comment --comment "cali:EWMPb0zVROM-woQp" -j MARK --set-xmark 0x40000/0x40000
-A cali-PREROUTING -m comment --comment "cali:PWuxTAIaFCtsg5Qa" -m mark --mark 0x40000/0x40000 -j cali-rpf-skip
-A cali-OUTPUT -m comment --comment "cali:njdnLwYeGqBJyh3y" -j MARK --set-xmark 0x0/0xf0000
COMMIT
*nat
:cali-PREROUTING - [0:0]
:cali-POSTROUTING - [0:0]
:cali-OUTPUT - [0:0]
:cali-nat-outgoing - [0:0]
:cali-fip-dnat - [0:0]
:cali-fip-snat - [0:0]
-A PREROUTING -m comment --comment "cali:6gwbT8clXdHdC1b1" -j cali-PREROUTING
-A OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" -j cali-OUTPUT
-A POSTROUTING -m comment --comment "cali:O3lYWMrLQYEMJtB5" -j cali-POSTROUTING
-A cali-PREROUTING -m comment --comment "cali:r6XmIziWUJsdOK6Z" -j cali-fip-dnat
-A cali-POSTROUTING -m comment --comment "cali:Z-c7XtVd2Bq7s_hA" -j cali-fip-snat
-A cali-POSTROUTING -m comment --comment "cali:nYKhEzDlr11Jccal" -j cali-nat-outgoing
-A cali-OUTPUT -m comment --comment "cali:GBTAv2p5CwevEyJm" -j cali-fip-dnat
-A cali-nat-outgoing -m comment --comment "cali:flqWnvo8yq4ULQLa" -m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst -j MASQUERADE --random-fully
COMMIT
*filter
:cali-INPUT - [0:0]
:cali-FORWARD - [0:0]
:cali-OUTPUT - [0:0]
:cali-failsafe-in - [0:0]
:cali-from-wl-dispatch - [0:0]
:cali-to-wl-dispatch - [0:0]
:cali-wl-to-host - [0:0]
:cali-fw-cali1a2b3c4d5e6 - [0:0]
:cali-tw-cali1a2b3c4d5e6 - [0:0]
-A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT
-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD
-A OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" -j cali-OUTPUT
-A cali-INPUT -i cali+ -m comment --comment "cali:FewJpBykm9iJ-YNH" -g cali-wl-to-host
-A cali-INPUT -m comment --comment "cali:hder3ARWznqqv8Va" -j cali-failsafe-in
-A cali-failsafe-in -p tcp -m comment --comment "cali:wWFQM43tJU7wwnFZ" -m multiport --dports 22 -j ACCEPT
-A cali-FORWARD -i cali+ -m comment --comment "cali:X3vB2lGcBrfkYquC" -j cali-from-wl-dispatch
-A cali-FORWARD -o cali+ -m comment --comment "cali:UtJ9FnhBnFbyQMvU" -j cali-to-wl-dispatch
-A cali-from-wl-dispatch -i cali1a2b3c4d5e6 -m comment --comment "cali:u0NmV-TsMRi7wHvK" -g cali-fw-cali1a2b3c4d5e6
-A cali-to-wl-dispatch -o cali1a2b3c4d5e6 -m comment --comment "cali:SmnLkKrvbqqtnhDo" -g cali-tw-cali1a2b3c4d5e6
-A cali-wl-to-host -m comment --comment "cali:Ee9Sbo10IpVujdIY" -j cali-from-wl-dispatch
-A cali-OUTPUT -m comment --comment "cali:Mq1_rAdXXH3YkrzW" -m mark --mark 0x10000/0x10000 -j ACCEPT
COMMIT
"""

# The pod CIDR blocks of the test (IPAM block size /26, libcalico-go/lib/ipam): this node's block is 10.244.1.0/26,
# another node's 10.244.2.0/26 behind 192.168.77.12.
CALICO_NETLINK = """
ipset create cali40all-ipam-pools hash:net family inet
ipset add cali40all-ipam-pools 10.244.0.0/16
ipset create cali40masq-ipam-pools hash:net family inet
ipset add cali40masq-ipam-pools 10.244.0.0/16
ipset create cali40this-host hash:ip family inet
ipset add cali40this-host {node_ip}
ip link add vxlan.calico type vxlan id 4096 dstport 4789 local {node_ip} dev eth0 nolearning
ip link set vxlan.calico mtu 1450 address 66:a1:b2:c3:d4:e5 up
ip addr add 10.244.1.0/32 dev vxlan.calico
ip route add 10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80
ip neigh add 10.244.2.0 lladdr 66:a1:b2:c3:d4:f6 dev vxlan.calico nud permanent
bridge fdb append 66:a1:b2:c3:d4:f6 dev vxlan.calico dst 192.168.77.12 self permanent
ip route add blackhole 10.244.1.0/26 proto 80
ip route add 10.244.3.0/26 via 192.168.77.13 dev eth0 onlink proto bird
ip route add blackhole 10.244.1.64/26 proto bird
ip route add 10.244.1.5 dev cali1a2b3c4d5e6 scope link
"""
# vxlan.calico: felix/dataplane/linux/vxlan_mgr.go (VNI 4096, port 4789, learning off, /32 tunnel address,
#   routes "via <remote tunnel IP> onlink" with the permanent ARP and FDB entries it programs);
# proto 80: felix/dataplane/linux (dataplanedefs.DefaultRouteProto = 80) for VXLAN routes and block blackholes;
# proto bird and blackholes: confd/etc/calico/confd/templates/bird.cfg.template (BIRD exports with "proto bird",
#   blackhole for the local blocks);
# the workload route "<pod IP> dev cali<hash> scope link": felix/routetable/route_table.go via the endpoint manager.
# tunl0 (IP-in-IP) is left out: this kernel has no ipip module (the test says so in its output).

CALICO_FILES = {
    "etc/cni/net.d/10-calico.conflist": '{"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [{"type": "calico"}]}\n',
    "etc/cni/net.d/calico-kubeconfig": "apiVersion: v1\nkind: Config\n",
    "var/lib/calico/nodename": "node1\n",
    "var/lib/calico/mtu": "1450\n",
}


def calico_state(lab: NetnsLab, node: NodeNs, *, backend: str = "legacy") -> str:
    """Calico on ``node`` in the given iptables backend; returns the workload (pod) namespace's name."""
    pod = lab.add_pod(node, "calipod", "10.244.1.5", "169.254.1.1", host_if="cali1a2b3c4d5e6", prefixlen=32)
    lab.sh(node, CALICO_NETLINK.format(node_ip=node.ip))
    lab.run(node, [f"iptables-{backend}-restore", "--noflush"], stdin=CALICO_IPTABLES)
    for rel, text in CALICO_FILES.items():
        p = node.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return pod
