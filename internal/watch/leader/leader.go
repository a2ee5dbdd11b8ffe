// Package leader elects one pullfix replica on a coordination.k8s.io Lease:
// only the leader syncs incidents, notifies and holds the Slack connection.
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// DefaultLeaseName is the Lease pullfix replicas compete for.
const DefaultLeaseName = "pullfix"

// ErrLeadershipLost is returned by Run when this replica
// led and then lost the Lease (it could not renew in time) while its
// context was still live.
var ErrLeadershipLost = errors.New("leader: leadership lost")

// Config configures leader election on a coordination.k8s.io Lease.
// Zero fields take the defaults below, which are client-go's and
// kube-controller-manager's: a dead leader is replaced within about
// LeaseDuration+RetryPeriod, a cleanly stopped one within RetryPeriod
// (the Lease is released on cancel).
type Config struct {
	// Namespace holds the Lease: the bot's own namespace. Required.
	Namespace string
	// Name is the Lease's name (default "pullfix").
	Name string
	// Identity names this replica in the Lease (default hostname_random,
	// unique even for two replicas in one pod or process).
	Identity string
	// LeaseDuration is how long followers wait before taking over an
	// unrenewed Lease (default 15s).
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before it
	// stops its work (default 10s).
	RenewDeadline time.Duration
	// RetryPeriod is how often candidates try (default 2s).
	RetryPeriod time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// WithDefaults fills in the zero fields; a missing Namespace is an error.
func (c Config) WithDefaults() (Config, error) {
	if c.Namespace == "" {
		return c, errors.New("leader election: the Lease namespace (the bot's own namespace) is required")
	}
	if c.Name == "" {
		c.Name = DefaultLeaseName
	}
	if c.Identity == "" {
		c.Identity = newIdentity()
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func newIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "pullfix"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "_" + hex.EncodeToString(b)
}

// Run campaigns for the Lease and, while this replica
// holds it, runs run with a context that ends when leadership ends. It
// returns nil once ctx ends (after run has returned and the Lease has been
// released, so a follower takes over within its RetryPeriod),
// ErrLeadershipLost when the Lease was lost while ctx was live (run has
// returned by then), or a configuration error.
//
// The order on shutdown matters: the leader's work stops first and only
// then is the Lease released, so two replicas never notify at once.
// client-go's own ReleaseOnCancel releases as soon as ctx ends, while
// OnStartedLeading may still be running, so the elector runs on a context
// of its own that is cancelled after run returns.
func Run(ctx context.Context, cs kubernetes.Interface, cfg Config, run func(ctx context.Context)) error {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger.With("lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
	acquired := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		},
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { acquired <- lctx },
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != cfg.Identity {
					log.Info("following", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	leCtx, cancelLE := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelLE()
	leDone := make(chan struct{})
	go func() {
		defer close(leDone)
		le.Run(leCtx)
	}()
	log.Info("campaigning for leadership")
	select {
	case lctx := <-acquired:
		log.Info("leading")
		workCtx, cancelWork := context.WithCancel(lctx)
		stop := context.AfterFunc(ctx, cancelWork)
		run(workCtx)
		stop()
		cancelWork()
		lost := lctx.Err() != nil && ctx.Err() == nil
		cancelLE()
		<-leDone
		if lost {
			log.Warn("lost leadership; stopped leading")
			return ErrLeadershipLost
		}
		log.Info("stopped leading; lease released")
		return nil
	case <-ctx.Done():
		cancelLE()
		<-leDone
		return nil
	case <-leDone:
		return errors.New("leader election stopped unexpectedly")
	}
}
