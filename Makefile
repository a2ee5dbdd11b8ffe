# pullfix — the two commands of the README, and their parts.
#
#   make run    run pullfix: the current kubeconfig's cluster, or an embedded
#               local cluster with the runbook's broken ui-new
#   make test   build what the tests need (pinned Kubernetes binaries, once)
#               and run every test

GO ?= go

.PHONY: run test k8s-bins tools unit

run:
	$(GO) run ./hack/run

# k8s-bins builds etcd, kube-apiserver and kube-controller-manager from the
# pinned module in hack/k8s (several minutes the first time, cached after).
k8s-bins:
	./hack/build-k8s.sh

# tools builds helm from the pinned module in hack/helm (once, then cached).
tools:
	./hack/build-helm.sh

test: k8s-bins tools
	$(GO) vet ./...
	PULLFIX_K8S_BIN_DIR="$$(./hack/build-k8s.sh)" PULLFIX_HELM="$$(./hack/build-helm.sh)" $(GO) test -count=1 -timeout 30m ./...

# unit runs the tests that need no control plane.
unit:
	$(GO) test -count=1 ./internal/diagnose/... ./cmd/...
