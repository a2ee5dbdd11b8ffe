# pullfix — the two commands of the README, and their parts.
#
#   make run    run pullfix: the current kubeconfig's cluster, or an embedded
#               local cluster with the runbook's broken ui-new
#   make test   build what the tests need (pinned Kubernetes binaries, once;
#               Debian's containerd and runc for the real test node) and run
#               every test

GO ?= go

.PHONY: run test stress k8s-bins tools unit browser node-deps

run:
	$(GO) run ./hack/run

# k8s-bins builds etcd, kube-apiserver, kube-controller-manager and kubelet from the
# pinned module in hack/k8s (several minutes the first time, cached after).
k8s-bins:
	./hack/build-k8s.sh

# tools builds helm from the pinned module in hack/helm (once, then cached).
tools:
	./hack/build-helm.sh

# browser installs Debian's chromium (and a colour emoji font, so the
# messages' emoji render) for the demo's browser test (hack/run).
browser:
	command -v chromium >/dev/null && test -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null)

# node-deps installs Debian's containerd and runc (and iptables) for the
# real test node (internal/testenv/node): containerd, the runc shim and runc
# run its pods; the kubelet itself comes from k8s-bins.
node-deps:
	command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null && command -v runc >/dev/null && command -v iptables >/dev/null && command -v nsenter >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc iptables util-linux mount >/dev/null)

test: k8s-bins tools browser node-deps
	$(GO) vet ./...
	PULLFIX_K8S_BIN_DIR="$$(./hack/build-k8s.sh)" PULLFIX_HELM="$$(./hack/build-helm.sh)" $(GO) test -count=1 -timeout 30m ./...

# stress runs the whole suite RUNS times (default 5) with a CPU hog on every
# core (Debian's stress-ng) and prints how many runs passed and which tests
# failed: a test that depends on where the clock lands shows up here.
stress: k8s-bins tools browser node-deps
	PULLFIX_K8S_BIN_DIR="$$(./hack/build-k8s.sh)" PULLFIX_HELM="$$(./hack/build-helm.sh)" CI=true ./hack/stress.sh

# unit runs the tests that need no control plane, Helm or browser.
unit:
	$(GO) test -count=1 ./internal/diagnose/... ./internal/slackapp/... ./internal/testenv/registries/... ./internal/testenv/slackemu/...
