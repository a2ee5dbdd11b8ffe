#!/usr/bin/env bash
# build-helm.sh builds Helm from the pinned module in hack/helm into a cache
# directory keyed by version, once. It prints the path of the helm binary on
# its last line. Helm is built from the Go module proxy, never downloaded as a
# prebuilt binary, and stays out of the main go.mod.
#
#   PULLFIX_TOOLS_CACHE  where to keep it (default: $XDG_CACHE_HOME or ~/.cache, /pullfix/tools)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/helm"
version="$(go list -m -f '{{.Version}}' helm.sh/helm/v3)"
cache_root="${PULLFIX_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullfix/tools}"
out="$cache_root/helm-$version"
if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi
mkdir -p "$out.tmp"
start=$(date +%s)
echo "building helm $version (built once, then cached; the first build takes a few minutes)" >&2
# The -X flags are those of Helm's own Makefile: the version `helm version`
# prints, and the Kubernetes version that `helm lint` and `helm template`
# assume (.Capabilities.KubeVersion), taken from the client-go Helm links
# (v0.N.x is Kubernetes 1.N); unstamped, Helm would assume Kubernetes 1.20.
k8s_minor="$(go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" \
  -o "$out.tmp/helm" helm.sh/helm/v3/cmd/helm
rm -rf "$out" && mv "$out.tmp" "$out"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out/helm"
