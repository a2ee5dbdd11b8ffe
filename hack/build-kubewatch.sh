#!/usr/bin/env bash
# build-kubewatch.sh builds robusta-dev/kubewatch, the benchmark's
# side-by-side comparison (go run ./hack/bench --kubewatch build), into a
# cache directory keyed by commit, once. It prints the binary's path on its
# last line.
#
# kubewatch cannot come from the Go module proxy: robusta-dev/kubewatch's
# go.mod still names the module github.com/bitnami-labs/kubewatch, so the
# proxy can serve it under neither path (`go list -m -versions
# github.com/robusta-dev/kubewatch` fails; here the proxy answers 403 "not
# available" for both, and only bitnami's 2018 v0.1.0 exists). So its
# source is a git checkout at a pinned commit, and its dependencies come
# from the module proxy, checked against its go.sum.
#
#   PULLFIX_KUBEWATCH_SRC  a git repository (work tree or bare) holding the
#                          commit; default: a clone of
#                          https://github.com/robusta-dev/kubewatch
#   PULLFIX_TOOLS_CACHE    where to keep it (default: $XDG_CACHE_HOME or ~/.cache, /pullfix/tools)
set -euo pipefail
commit=6f16a684deae44bbb5b422c044f388967d2176f5 # "ROB-997 Redact Secret data from outbound notifications (#116)", 2026-08-20
cache_root="${PULLFIX_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullfix/tools}"
out="$cache_root/kubewatch-${commit:0:12}"
if [[ -x "$out/kubewatch" ]]; then
  echo "$out/kubewatch"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
repo="${PULLFIX_KUBEWATCH_SRC:-}"
if [[ -z "$repo" ]]; then
  repo="$work/repo"
  git clone --quiet --filter=blob:none https://github.com/robusta-dev/kubewatch "$repo" >&2
fi
mkdir -p "$work/src"
git -C "$repo" archive "$commit" | tar -x -C "$work/src"
start=$(date +%s)
echo "building kubewatch ${commit:0:12} (built once, then cached)" >&2
mkdir -p "$out.tmp"
(cd "$work/src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$out.tmp/kubewatch" .)
rm -rf "$out" && mv "$out.tmp" "$out"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out/kubewatch"
