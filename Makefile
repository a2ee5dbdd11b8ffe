# pullfix — the two commands of the README, and their parts.
#
#   make run    run pullfix (current kubeconfig, or an embedded local cluster)
#   make test   build what the tests need (pinned Kubernetes binaries, once) and run every test

GO ?= go

.PHONY: run test k8s-bins vet unit fuzz-smoke

run:
	$(GO) run ./cmd/bot run

# k8s-bins builds etcd, kube-apiserver and kube-controller-manager from the
# pinned module in hack/k8s (several minutes the first time, cached after).
k8s-bins:
	./hack/build-k8s.sh

test: k8s-bins
	$(GO) vet ./...
	PULLFIX_K8S_BIN_DIR="$$(./hack/build-k8s.sh | tail -n1)" $(GO) test -count=1 -timeout 30m ./...

unit:
	$(GO) test -count=1 ./internal/diagnose/... ./cmd/...
