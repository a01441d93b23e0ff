#!/usr/bin/env bash
# Build the real control plane used by the integration tests, from Go modules, into a cache outside the repo.
# Nothing prebuilt is downloaded: only Go modules (through GOPROXY / the module cache) and the local Go toolchain.
#
# Idempotent: a component is skipped when its outputs exist and were made by the same recipe (pinned version
# plus the text of its build function, recorded in a stamp file); edit a recipe and only that component rebuilds.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${CNI_MIGRATE_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cni-migrate-testbed}
BIN=$CACHE/bin
mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

step() { # step NAME OUTDIR FUNCTION [ARGS...]: run FUNCTION unless OUTDIR/.stamp matches its recipe
  local name=$1 out=$2 fn=$3; shift 3
  local recipe
  recipe=$({ declare -f "$fn"; echo "$*"; } | sha256sum | cut -c1-16)
  if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$recipe" ]; then
    echo "testbed: $name: cached ($out)"; return
  fi
  echo "testbed: $name: building..."
  local t0=$SECONDS
  rm -f "$out/.stamp"; mkdir -p "$out"
  ( "$fn" "$out" "$@" )
  echo "$recipe" >"$out/.stamp"
  echo "testbed: $name: built in $((SECONDS - t0)) s"
}

# A throw-away wrapper module per component, under $CACHE/src, so that nothing touches the repository.
wrapper() { # wrapper DIR MODULE-NAME
  mkdir -p "$1"; cd "$1"
  [ -f go.mod ] || go mod init "$2" >/dev/null 2>&1
}

build_kubernetes() { # k8s.io/kubernetes needs its staging modules (required at v0.0.0) replaced by real tags
  local out=$1 K=$KUBERNETES_VERSION S=0.${KUBERNETES_VERSION#1.} MINOR GOMOD m c p
  MINOR=$(cut -d. -f2 <<<"$K")
  wrapper "$CACHE/src/kubernetes-$K" local.test/k8sbin
  GOMOD=$(go mod download -json "k8s.io/kubernetes@v$K" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$GOMOD"); do go mod edit -replace="$m=$m@v$S"; done
  go mod edit -require="k8s.io/kubernetes@v$K"
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go get -tool "k8s.io/kubernetes/cmd/$c@v$K" >/dev/null
  done
  local LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD="$LD -X $p.gitVersion=v$K -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
  done
  go build -trimpath -ldflags "$LD" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  "$out/kube-apiserver" --version
}

build_etcd() { # go.etcd.io/etcd/server/v3 is etcd's main package
  local out=$1
  wrapper "$CACHE/src/etcd-$ETCD_VERSION" local.test/etcdbin
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
  "$out/etcd" --version | head -1
}

build_kwok() { # the binary, plus the stages kwokctl would give it (kwok refuses to start without stages)
  local out=$1 dir f
  wrapper "$CACHE/src/kwok-$KWOK_VERSION" local.test/kwokbin
  go get "sigs.k8s.io/kwok@v$KWOK_VERSION" >/dev/null
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" \
    -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok
  dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$dir/$f"
  done >"$out/kwok-stages.yaml"
  "$out/kwok" --version
}

build_helm() { # Helm's Makefile also stamps the Kubernetes version it reports to charts (.Capabilities)
  local out=$1 cg major minor LD
  wrapper "$CACHE/src/helm-$HELM_VERSION" local.test/helmbin
  go get "helm.sh/helm/v3@v$HELM_VERSION" >/dev/null
  cg=$(go list -m -f '{{.Version}}' k8s.io/client-go); cg=${cg#v}
  major=$(( $(cut -d. -f1 <<<"$cg") + 1 )); minor=$(cut -d. -f2 <<<"$cg")
  LD="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  LD="$LD -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    LD="$LD -X $p.k8sVersionMajor=$major -X $p.k8sVersionMinor=$minor"
  done
  go build -trimpath -ldflags "$LD" -o "$out/helm" helm.sh/helm/v3/cmd/helm
  "$out/helm" version --short
}

build_kube_proxy() { # the node component of the same Kubernetes release, in its own wrapper module and output dir
  local out=$1 K=$KUBERNETES_VERSION S=0.${KUBERNETES_VERSION#1.} MINOR GOMOD m p
  MINOR=$(cut -d. -f2 <<<"$K")
  wrapper "$CACHE/src/kube-proxy-$K" local.test/kubeproxybin
  GOMOD=$(go mod download -json "k8s.io/kubernetes@v$K" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$GOMOD"); do go mod edit -replace="$m=$m@v$S"; done
  go mod edit -require="k8s.io/kubernetes@v$K"
  go get -tool "k8s.io/kubernetes/cmd/kube-proxy@v$K" >/dev/null
  local LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD="$LD -X $p.gitVersion=v$K -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
  done
  go build -trimpath -ldflags "$LD" -o "$out/" k8s.io/kubernetes/cmd/kube-proxy
  "$out/kube-proxy" --version
}

build_flannel() { # flanneld is the module's main package, which links every backend
  local out=$1 vpc=github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc
  wrapper "$CACHE/src/flannel-$FLANNEL_VERSION" local.test/flannelbin
  # The module proxy serves the metadata but not the source zip of the Tencent VPC SDK version Flannel pins
  # (v1.3.188, "not available"); the tencentvpc backend (never used here) compiles against v1.0.1000.
  go mod edit -replace="$vpc=$vpc@v1.0.1000"
  go get "github.com/flannel-io/flannel@v$FLANNEL_VERSION" >/dev/null
  # The UDP backend is cgo on amd64, as in Flannel's Makefile: without cgo main does not link.
  CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=v$FLANNEL_VERSION" \
    -o "$out/flanneld" github.com/flannel-io/flannel
  "$out/flanneld" --version
}

# Node components for the netns tests (tests/netns): `bash testbed/build.sh node` builds only these two.
build_node_components() {
  step "kube-proxy v$KUBERNETES_VERSION" "$CACHE/kube-proxy-$KUBERNETES_VERSION" build_kube_proxy "$KUBERNETES_VERSION"
  step "flannel v$FLANNEL_VERSION" "$CACHE/flannel-$FLANNEL_VERSION" build_flannel "$FLANNEL_VERSION"
  ln -sfn "$CACHE/kube-proxy-$KUBERNETES_VERSION/kube-proxy" "$CACHE/flannel-$FLANNEL_VERSION/flanneld" "$BIN/"
}
if [ "${1:-}" = node ]; then build_node_components; exit 0; fi

t_all=$SECONDS
echo "testbed: cache $CACHE"
step "kubernetes v$KUBERNETES_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)" \
  "$CACHE/k8s-$KUBERNETES_VERSION" build_kubernetes "$KUBERNETES_VERSION"
step "etcd v$ETCD_VERSION" "$CACHE/etcd-$ETCD_VERSION" build_etcd "$ETCD_VERSION"
step "kwok v$KWOK_VERSION" "$CACHE/kwok-$KWOK_VERSION" build_kwok "$KWOK_VERSION"
step "helm v$HELM_VERSION" "$CACHE/helm-$HELM_VERSION" build_helm "$HELM_VERSION"
# (Re-)link every output into $CACHE/bin, where cni_migrate_testbed looks for them.
ln -sfn "$CACHE/k8s-$KUBERNETES_VERSION/"{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl} "$BIN/"
ln -sfn "$CACHE/etcd-$ETCD_VERSION/etcd" "$CACHE/kwok-$KWOK_VERSION/kwok" "$CACHE/kwok-$KWOK_VERSION/kwok-stages.yaml" \
  "$CACHE/helm-$HELM_VERSION/helm" "$BIN/"
build_node_components
echo "testbed: ready in $((SECONDS - t_all)) s: $BIN"
