# An install command for examples/calico-bgp-lossy after an offline cut-over (Calico and kube-proxy removed first),
# as pasted into `cni-migrate lint --helm-command @examples/values/helm-install.sh`.
helm install cilium cilium/cilium --version 1.16.5 --namespace kube-system \
  --set ipam.mode=cluster-pool \
  --set ipam.operator.clusterPoolIPv4PodCIDRList='{10.33.0.0/17}' \
  --set routingMode=native --set ipv4NativeRoutingCIDR=10.33.0.0/17 --set autoDirectNodeRoutes=true \
  --set kubeProxyReplacement=true --set k8sServiceHost=10.31.90.0 --set k8sServicePort=8443
