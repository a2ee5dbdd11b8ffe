#!/usr/bin/env bash
# build-k8s.sh builds etcd, kube-apiserver, kube-controller-manager and kubelet
# (the real test node, internal/testenv/node) from the pinned module in hack/k8s into a cache directory keyed by version, once.
# It prints the directory holding the binaries on its last line.
#
#   PULLFIX_K8S_BIN_CACHE  where to keep them (default: $XDG_CACHE_HOME or ~/.cache, /pullfix/k8s)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="v1.37.2-etcd-v3.7.0-node-$(go env GOOS)-$(go env GOARCH)"
cache_root="${PULLFIX_K8S_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullfix/k8s}"
out="$cache_root/$version"
if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/etcd" && -x "$out/kubelet" ]]; then
  echo "$out"
  exit 0
fi
# Several `make test` runs (or engineers) may start at once: one builds, the
# others wait for it and then reuse the result.
mkdir -p "$cache_root"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache_root/.build.lock"
  if ! flock -n 9; then
    echo "waiting for another build-k8s.sh to finish" >&2
    flock 9
  fi
  if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/etcd" && -x "$out/kubelet" ]]; then
    echo "$out"
    exit 0
  fi
fi
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cd "$here/k8s"
start=$(date +%s)
# Stamp the Kubernetes version, as release builds do: the kubelet reports it
# as the Node's kubeletVersion (and every binary in /version).
kv=v1.37.2
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kv -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=37 -X $vpkg.gitTreeState=clean"
for pkg in ./cmd/etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubelet; do
  name="$(basename "$pkg")"
  echo "building $name (Kubernetes binaries are built once, then cached; the first build takes several minutes)" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$out.tmp/$name" "$pkg"
done
rm -rf "$out" && mv "$out.tmp" "$out"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
