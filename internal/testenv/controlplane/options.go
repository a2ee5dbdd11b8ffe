package controlplane

import (
	"io"
	"log/slog"
	"time"
)

// Option configures [Start].
type Option func(*config)

// config holds the resolved options; defaults are set in newConfig.
type config struct {
	binDir            string
	logOutput         io.Writer
	logger            *slog.Logger
	controllerManager bool
	controllers       []string
	controllerSACreds bool
	stopGrace         time.Duration
	startTimeout      time.Duration
	tempRoot          string
	keepTempDir       bool
	apiServerArgs     []string
	controllerArgs    []string
	etcdArgs          []string
}

// defaultControllers are every default controller except node IPAM, which
// allocates pod CIDRs for real node networking. (Kubernetes 1.37's
// controller manager no longer has cloud controllers to turn off, and
// rejects unknown names.) node-lifecycle-controller stays on: it is what
// marks a Node whose kubelet stops heartbeating NotReady and taints it,
// so a simulated kubelet must renew its Lease and status as a real one does.
var defaultControllers = []string{"*", "-node-ipam-controller"}

func newConfig(opts []Option) *config {
	c := &config{
		logger:            slog.New(slog.DiscardHandler),
		controllerManager: true,
		controllers:       defaultControllers,
		stopGrace:         5 * time.Second,
		startTimeout:      90 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// WithBinDir uses the binaries in dir. Default: [BinDir], i.e.
// $PULLFIX_K8S_BIN_DIR, else the versioned cache of hack/build-k8s.sh.
func WithBinDir(dir string) Option { return func(c *config) { c.binDir = dir } }

// WithLogOutput also streams the three processes' stdout and stderr to w,
// live (e.g. os.Stderr while debugging). Default: logs go only to files in
// the temporary directory, whose tails are printed when start-up or tests fail.
func WithLogOutput(w io.Writer) Option { return func(c *config) { c.logOutput = w } }

// WithLogger reports start-up, restart and stop progress. Default: discard,
// so passing tests stay quiet.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithControllerManager chooses whether kube-controller-manager runs.
// Default true. Without it nothing reconciles Deployments and no default
// service accounts are created, but start-up is quicker.
func WithControllerManager(on bool) Option { return func(c *config) { c.controllerManager = on } }

// WithControllers sets kube-controller-manager's --controllers, using the
// canonical 1.37 names (e.g. "*", "-node-lifecycle-controller"). Default:
// "*,-node-ipam-controller" — everything on by default except node IPAM,
// which needs node networking.
func WithControllers(controllers ...string) Option {
	return func(c *config) { c.controllers = controllers }
}

// WithControllerServiceAccountCredentials sets kube-controller-manager's
// --use-service-account-credentials: each controller gets its own service
// account and token, as in kubeadm clusters. Default false: creating ~40
// service accounts and tokens one after another before the first
// controller starts more than doubles start-up (≈11s instead of ≈5s on a
// busy two-core machine), and pullfix's tests exercise the bot's RBAC
// through ServiceAccountConfig, not the controllers'.
func WithControllerServiceAccountCredentials(on bool) Option {
	return func(c *config) { c.controllerSACreds = on }
}

// WithStopGrace is how long Stop waits after SIGTERM before SIGKILL.
// Default 5s.
func WithStopGrace(d time.Duration) Option { return func(c *config) { c.stopGrace = d } }

// WithStartTimeout bounds Start (and RestartAPIServer) when the context
// has no earlier deadline. Default 90s: a cold start on a loaded two-core
// machine takes well under that, so hitting it means something is wrong.
func WithStartTimeout(d time.Duration) Option { return func(c *config) { c.startTimeout = d } }

// WithTempRoot creates the control plane's temporary directory (etcd data,
// certificates, kubeconfig, logs) under dir. Default: os.TempDir().
func WithTempRoot(dir string) Option { return func(c *config) { c.tempRoot = dir } }

// WithKeepTempDir keeps the temporary directory after Stop, for post-mortems.
// Default false.
func WithKeepTempDir(keep bool) Option { return func(c *config) { c.keepTempDir = keep } }

// WithAPIServerArgs appends flags to kube-apiserver's command line; a flag
// given here overrides the default one.
func WithAPIServerArgs(args ...string) Option {
	return func(c *config) { c.apiServerArgs = append(c.apiServerArgs, args...) }
}

// WithControllerManagerArgs appends flags to kube-controller-manager's
// command line; a flag given here overrides the default one.
func WithControllerManagerArgs(args ...string) Option {
	return func(c *config) { c.controllerArgs = append(c.controllerArgs, args...) }
}

// WithEtcdArgs appends flags to etcd's command line.
func WithEtcdArgs(args ...string) Option {
	return func(c *config) { c.etcdArgs = append(c.etcdArgs, args...) }
}
