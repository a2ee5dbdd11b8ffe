// Package kubeclient connects to the Kubernetes API server as kubectl
// would, with client-side rate limits fit for a storm.
package kubeclient

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// New connects the way kubectl would: in-cluster when running in a pod,
// else the given path, $KUBECONFIG, ~/.kube/config. It says which, and
// names itself userAgent to the API server.
func New(path, userAgent string) (kubernetes.Interface, string, error) {
	cs, _, where, err := connect(path, userAgent, false)
	return cs, where, err
}

// NewWithDynamic is New plus a dynamic client on the same connection, for
// objects pullfix has no typed client for (Argo CD Applications, Flux
// Kustomizations and HelmReleases and their sources: issue #17).
func NewWithDynamic(path, userAgent string) (kubernetes.Interface, dynamic.Interface, string, error) {
	return connect(path, userAgent, true)
}

func connect(path, userAgent string, withDynamic bool) (kubernetes.Interface, dynamic.Interface, string, error) {
	var cfg *rest.Config
	var where string
	if path == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			cfg, where = c, "in-cluster"
		}
	}
	if cfg == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if path != "" {
			rules.ExplicitPath = path
		}
		c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, nil, "", fmt.Errorf("no Kubernetes connection: %w (set PULLFIX_KUBECONFIG or KUBECONFIG, or run `make run` for the local demo cluster)", err)
		}
		cfg, where = c, rules.GetDefaultFilename()
		if path != "" {
			where = path
		}
	}
	cfg.UserAgent = userAgent
	if cfg.QPS == 0 && cfg.Burst == 0 {
		// client-go's default (5 QPS, burst 10) turns a storm of 50 new
		// incidents — an owner GET, a Deployment GET and a ReplicaSet list
		// each — into tens of seconds of client-side throttling before the
		// first post (hack/bench). Reads happen only when something fails.
		cfg.QPS, cfg.Burst = 50, 100
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	if !withDynamic {
		return cs, nil, where, nil
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, "", fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	return cs, dyn, where, nil
}
