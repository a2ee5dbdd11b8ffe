package creds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Defaults of FindWorkingPullSecrets.
const (
	DefaultMaxSecrets = 10
	// maxPodPages bounds the pod listing (pages of 500) in a huge namespace.
	maxPodPages = 10
	// probeParallel is how many secrets are probed at once; the prober
	// bounds requests per registry on top of that.
	probeParallel = 4
)

// FindOption configures FindWorkingPullSecrets; one given a value it
// cannot use makes it fail with an error naming it.
type FindOption func(*findOptions) error

type findOptions struct {
	max int
	log *slog.Logger
}

// WithMaxSecrets bounds how many candidate secrets are read and probed
// (default DefaultMaxSecrets; at least 1). Secrets named by
// ServiceAccounts come first, then those most used by pods.
func WithMaxSecrets(n int) FindOption {
	return func(o *findOptions) error {
		if n < 1 {
			return fmt.Errorf("creds: WithMaxSecrets(%d): at least 1", n)
		}
		o.max = n
		return nil
	}
}

// WithFindLogger sets the logger; default slog.Default().
func WithFindLogger(l *slog.Logger) FindOption {
	return func(o *findOptions) error {
		if l == nil {
			return errors.New("creds: WithFindLogger: nil logger")
		}
		o.log = l
		return nil
	}
}

// FindWorkingPullSecrets returns the names of pull secrets in namespace
// whose credentials are proven to pull image: the prober fetches the
// image's manifest with each secret alone, and only those that succeed are
// returned, in candidate order.
//
// It never lists Secrets (the bot's Role allows only get on them): the
// candidates are the secrets that the namespace's ServiceAccounts and pods
// already reference in imagePullSecrets — the ones people in that namespace
// put there for pulling. Secrets that hold no credential for the image's
// registry are not probed. The work is bounded (WithMaxSecrets).
func FindWorkingPullSecrets(ctx context.Context, cs kubernetes.Interface, namespace, image string, platform diagnose.Platform, prober *diagnose.Prober, opts ...FindOption) ([]string, error) {
	o := findOptions{max: DefaultMaxSecrets, log: slog.Default()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if prober == nil {
		return nil, errors.New("find pull secrets: no prober")
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, fmt.Errorf("find pull secrets for %q: %w", image, err)
	}
	host, repo := ref.Context().RegistryStr(), ref.Context().RepositoryStr()

	names, err := candidateSecrets(ctx, cs, namespace, o.log)
	if err != nil {
		return nil, err
	}
	if len(names) > o.max {
		o.log.Info("more candidate pull secrets than the bound; probing the first", "namespace", namespace, "candidates", len(names), "max", o.max)
		names = names[:o.max]
	}

	working := make([]bool, len(names))
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for i, n := range names {
		sec, err := cs.CoreV1().Secrets(namespace).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			// Referenced but missing or unreadable: the kubelet skips it too.
			o.log.Debug("candidate pull secret unreadable", "namespace", namespace, "secret", n, "err", err)
			continue
		}
		kc, errs := KeychainFromSecrets([]*corev1.Secret{sec})
		if len(errs) > 0 {
			o.log.Debug("candidate is not a usable pull secret", "namespace", namespace, "secret", n, "err", errs[0])
			continue
		}
		if len(kc.Matching(host, repo)) == 0 {
			continue // no credential for this registry: proves nothing
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			res := prober.Probe(ctx, image, kc, platform)
			o.log.Debug("probed with candidate pull secret", "namespace", namespace, "secret", n, "image", image, "ok", res.OK, "cause", res.Cause)
			working[i] = res.OK
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []string
	for i, ok := range working {
		if ok {
			out = append(out, names[i])
		}
	}
	return out, nil
}

// candidateSecrets collects the pull-secret names referenced in namespace:
// ServiceAccounts' first ("default" before the others), then pods', most
// referenced first. A listing that fails is logged and skipped; only when
// both fail is it an error.
func candidateSecrets(ctx context.Context, cs kubernetes.Interface, namespace string, log *slog.Logger) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sas, saErr := cs.CoreV1().ServiceAccounts(namespace).List(ctx, metav1.ListOptions{})
	if saErr == nil {
		items := sas.Items
		sort.SliceStable(items, func(i, j int) bool {
			if (items[i].Name == "default") != (items[j].Name == "default") {
				return items[i].Name == "default"
			}
			return items[i].Name < items[j].Name
		})
		for _, sa := range items {
			for _, r := range sa.ImagePullSecrets {
				add(r.Name)
			}
		}
	} else {
		log.Warn("cannot list service accounts for pull secret candidates", "namespace", namespace, "err", saErr)
	}

	uses := map[string]int{}
	var podErr error
	lo := metav1.ListOptions{Limit: 500}
	for page := 0; page < maxPodPages; page++ {
		pods, err := cs.CoreV1().Pods(namespace).List(ctx, lo)
		if err != nil {
			podErr = err
			log.Warn("cannot list pods for pull secret candidates", "namespace", namespace, "err", err)
			break
		}
		for _, p := range pods.Items {
			for _, r := range p.Spec.ImagePullSecrets {
				uses[r.Name]++
			}
		}
		if pods.Continue == "" {
			break
		}
		lo.Continue = pods.Continue
	}
	byUse := make([]string, 0, len(uses))
	for n := range uses {
		byUse = append(byUse, n)
	}
	sort.Slice(byUse, func(i, j int) bool {
		if uses[byUse[i]] != uses[byUse[j]] {
			return uses[byUse[i]] > uses[byUse[j]]
		}
		return byUse[i] < byUse[j]
	})
	for _, n := range byUse {
		add(n)
	}
	if saErr != nil && podErr != nil {
		return nil, fmt.Errorf("find pull secrets in %s: list service accounts: %w; list pods: %v", namespace, saErr, podErr)
	}
	return out, nil
}
