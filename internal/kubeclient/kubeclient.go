// Package kubeclient connects to the Kubernetes API server as kubectl
// would, with client-side rate limits fit for a storm.
package kubeclient

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// New connects the way kubectl would: in-cluster when running in a pod,
// else the given path, $KUBECONFIG, ~/.kube/config. It says which, and
// names itself userAgent to the API server.
func New(path, userAgent string) (kubernetes.Interface, string, error) {
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
			return nil, "", fmt.Errorf("no Kubernetes connection: %w (set PULLFIX_KUBECONFIG or KUBECONFIG, or run `make run` for the local demo cluster)", err)
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
		return nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, where, nil
}
