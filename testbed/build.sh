#!/usr/bin/env bash
# Build the real control plane used by the integration tests, from Go modules, into a cache outside the repo.
# Idempotent: each component is skipped when its binary for the pinned version is already in the cache.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${CNI_MIGRATE_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cni-migrate-testbed}
BIN=$CACHE/bin
mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

step() { # step NAME CHECK-FILE COMMAND...
  local name=$1 done_marker=$2; shift 2
  if [ -x "$done_marker" ]; then echo "testbed: $name: cached ($done_marker)"; return; fi
  echo "testbed: $name: building..."
  local t0=$SECONDS
  "$@"
  echo "testbed: $name: built in $((SECONDS - t0)) s"
}

build_kubernetes() {
  local K=$KUBERNETES_VERSION S=0.${KUBERNETES_VERSION#1.} MINOR
  MINOR=$(cut -d. -f2 <<<"$K")
  local W=$CACHE/src/kubernetes-$K
  mkdir -p "$W"; cd "$W"
  [ -f go.mod ] || go mod init local.test/k8sbin >/dev/null 2>&1
  local GOMOD
  GOMOD=$(go mod download -json "k8s.io/kubernetes@v$K" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$GOMOD"); do go mod edit -replace="$m=$m@v$S"; done
  go mod edit -require="k8s.io/kubernetes@v$K"
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do go get -tool "k8s.io/kubernetes/cmd/$c@v$K" >/dev/null; done
  local LD="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD="$LD -X $p.gitVersion=v$K -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
  done
  local out=$CACHE/k8s-$K; mkdir -p "$out"
  go build -trimpath -ldflags "$LD" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do ln -sf "$out/$c" "$BIN/$c"; done
  "$out/kube-apiserver" --version
}

build_etcd() {
  local W=$CACHE/src/etcd-$ETCD_VERSION out=$CACHE/etcd-$ETCD_VERSION
  mkdir -p "$W" "$out"; cd "$W"
  [ -f go.mod ] || go mod init local.test/etcdbin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
  ln -sf "$out/etcd" "$BIN/etcd"
  "$out/etcd" --version | head -1
}

build_gomain() { # build_gomain NAME MODULE VERSION PACKAGE
  local name=$1 mod=$2 ver=$3 pkg=$4 W=$CACHE/src/$1-$3 out=$CACHE/$1-$3
  mkdir -p "$W" "$out"; cd "$W"
  [ -f go.mod ] || go mod init "local.test/${name}bin" >/dev/null 2>&1
  go get "$mod@v$ver" >/dev/null
  go build -trimpath -ldflags "-s -w $5" -o "$out/$name" "$pkg"
  ln -sf "$out/$name" "$BIN/$name"
}

t_all=$SECONDS
echo "testbed: cache $CACHE"
step "kubernetes v$KUBERNETES_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)" \
  "$CACHE/k8s-$KUBERNETES_VERSION/kubectl" build_kubernetes
step "etcd v$ETCD_VERSION" "$CACHE/etcd-$ETCD_VERSION/etcd" build_etcd
step "kwok v$KWOK_VERSION" "$CACHE/kwok-$KWOK_VERSION/kwok" \
  build_gomain kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
step "helm v$HELM_VERSION" "$CACHE/helm-$HELM_VERSION/helm" \
  build_gomain helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
# Re-link in case the cache was complete but links were removed.
ln -sf "$CACHE/k8s-$KUBERNETES_VERSION/"{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl} "$BIN/"
ln -sf "$CACHE/etcd-$ETCD_VERSION/etcd" "$CACHE/kwok-$KWOK_VERSION/kwok" "$CACHE/helm-$HELM_VERSION/helm" "$BIN/"
echo "testbed: ready in $((SECONDS - t_all)) s: $BIN"
