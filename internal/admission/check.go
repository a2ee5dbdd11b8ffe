package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/creds"
)

// Prober is the registry probe (internal/diagnose's Prober).
type Prober interface {
	Probe(ctx context.Context, image string, kc authn.Keychain, platform diagnose.Platform) diagnose.ProbeResult
}

// Diagnoser finds verified replacement images (internal/diagnose's Diagnoser).
type Diagnoser interface {
	Diagnose(ctx context.Context, t diagnose.Target, kc authn.Keychain) diagnose.Diagnosis
}

// Finding is what the registry showed about one image that will not pull.
type Finding struct {
	Container string
	Image     string
	Cause     diagnose.Cause
	// Candidate is a verified replacement ("" when none was found in time).
	Candidate string
	// Text is the warning, e.g. "image public.ecr.aws/…/retailing-store-sample-ui:1.2.1:
	// repository not found at public.ecr.aws; public.ecr.aws/…/retail-store-sample-ui:1.2.1 exists".
	Text string
	// Deniable: the registry (or the reference parser) showed the image
	// cannot be pulled by any credentials — it is missing, or has no
	// manifest for a platform the nodes run. A refusal of the pod's
	// credentials is never deniable: the nodes may hold credentials of
	// their own (a credential provider, the node role) the bot cannot see.
	Deniable bool
}

// Checker answers "can these images be pulled?" for a workload, from
// cache when it can, else at the registries within the caller's deadline.
type Checker struct {
	cs          kubernetes.Interface
	prober      Prober
	diag        Diagnoser
	ecr         *creds.ECRKeychain
	lookup      *watch.ImageLookup // nil without a client
	readSecrets bool
	log         *slog.Logger
	ttl         time.Duration
	nodesTTL    time.Duration

	mu       sync.Mutex
	verdicts map[string]verdict
	nodes    nodePlatforms
	slow     map[string]time.Time // registry host → when it outlasted a budget
}

func (c *Checker) slowHost(host string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.slow[host]
	if ok && time.Since(at) >= SlowHostTTL {
		delete(c.slow, host)
		return false
	}
	return ok
}

func (c *Checker) markSlow(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slow[host] = time.Now()
}

type verdict struct {
	at      time.Time
	finding *Finding // nil: the image pulls
}

type nodePlatforms struct {
	at        time.Time
	platforms []diagnose.Platform
}

// CheckerConfig configures a Checker.
type CheckerConfig struct {
	Client    kubernetes.Interface
	Prober    Prober
	Diagnoser Diagnoser
	// ECR is the bot's own ECR identity (creds.ECRKeychainFromEnv); nil: none.
	ECR *creds.ECRKeychain
	// ReadSecrets: read the pull Secrets the pods would use
	// (PULLFIX_PULL_SECRET_PROBING); off, every probe is anonymous.
	ReadSecrets bool
	Logger      *slog.Logger
	// CacheTTL is how long an answer is reused for the same image,
	// credentials and node platforms. Default 5 minutes.
	CacheTTL time.Duration
	// NodesTTL is how long the nodes' platforms are reused. Default 5 minutes.
	NodesTTL time.Duration
}

// NewChecker returns a Checker.
func NewChecker(c CheckerConfig) *Checker {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = 5 * time.Minute
	}
	if c.NodesTTL <= 0 {
		c.NodesTTL = 5 * time.Minute
	}
	ch := &Checker{cs: c.Client, prober: c.Prober, diag: c.Diagnoser, ecr: c.ECR, readSecrets: c.ReadSecrets,
		log: c.Logger, ttl: c.CacheTTL, nodesTTL: c.NodesTTL, verdicts: map[string]verdict{}, slow: map[string]time.Time{}}
	if c.Client != nil {
		ch.lookup = watch.NewImageLookup(c.Client)
	}
	return ch
}

// Outcome is the result of checking one workload's new images.
type Outcome struct {
	Findings []Finding
	// Complete is false when the deadline ended the check before every
	// image had an answer; the images without one are not warned about.
	Complete bool
	// FromCache counts images answered from the cache, Asked those
	// answered at the registry.
	FromCache, Asked int
	// Skipped counts images not checked because their registry outlasted
	// a review's budget within the last SlowHostTTL.
	Skipped int
}

// SlowHostTTL is how long a registry that outlasted a review's budget is
// not asked again: while it hangs, applies that name it are answered at
// once (allowed, no warning) instead of each waiting out the budget.
const SlowHostTTL = time.Minute

// Check checks images (the workload's changed ones) under ctx's deadline.
// It returns when every image has an answer or when ctx ends, whichever is
// first; work still running then is cancelled.
func (c *Checker) Check(ctx context.Context, w *Workload, images []ImageUse, old *corev1.PodSpec) Outcome {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := Outcome{Complete: true}
	var pending []ImageUse
	// An invalid reference needs no network and no credentials.
	for _, u := range images {
		if f := invalidReference(u); f != nil {
			out.Findings = append(out.Findings, *f)
			continue
		}
		if c.slowHost(displayHost(u.Image)) {
			out.Skipped++
			out.Complete = false
			continue
		}
		pending = append(pending, u)
	}
	if len(pending) == 0 {
		return out
	}

	type answer struct {
		i      int
		f      *Finding
		cached bool
	}
	answers := make(chan answer, len(pending))
	go func() {
		kc, credKey := c.keychain(ctx, w)
		platforms := c.platforms(ctx)
		var wg sync.WaitGroup
		for i, u := range pending {
			wg.Go(func() {
				key := u.Image + "|" + credKey + "|" + platformKey(platforms)
				if f, ok := c.cached(key); ok {
					answers <- answer{i: i, f: withContainer(f, u.Container), cached: true}
					return
				}
				f, complete, keep := c.checkImage(ctx, w, u, OldImage(old, u.Container), kc, platforms)
				if complete && keep {
					c.store(key, f)
				} else if !complete && f == nil {
					c.markSlow(displayHost(u.Image))
				}
				if complete || f != nil {
					answers <- answer{i: i, f: f}
				}
			})
		}
		wg.Wait()
		close(answers)
	}()

	got := make([]*Finding, len(pending))
	answered := 0
	for answered < len(pending) {
		select {
		case a, ok := <-answers:
			if !ok {
				answered = len(pending) + 1 // some images gave no answer
				continue
			}
			answered++
			got[a.i] = a.f
			if a.cached {
				out.FromCache++
			} else {
				out.Asked++
			}
		case <-ctx.Done():
			out.Complete = false
			answered = len(pending) + 1
		}
	}
	if answered > len(pending) {
		out.Complete = false
	}
	for _, f := range got {
		if f != nil {
			out.Findings = append(out.Findings, *f)
		}
	}
	return out
}

func withContainer(f *Finding, container string) *Finding {
	if f == nil {
		return nil
	}
	g := *f
	g.Container = container
	return &g
}

func (c *Checker) cached(key string) (*Finding, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.verdicts[key]
	if !ok || time.Since(v.at) >= c.ttl {
		return nil, false
	}
	return v.finding, true
}

func (c *Checker) store(key string, f *Finding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.verdicts {
		if time.Since(v.at) >= c.ttl {
			delete(c.verdicts, k)
		}
	}
	c.verdicts[key] = verdict{at: time.Now(), finding: f}
}

// checkImage asks the registry about one image for the nodes' platforms.
// complete is false when ctx ended first; a finding made before that (the
// image is missing, its replacement not yet verified) is still returned.
// keep says the answer may be cached: not when the registry was not
// reached (a timeout, a refused connection, a 5xx), so that its recovery
// is seen at the next apply.
func (c *Checker) checkImage(ctx context.Context, w *Workload, u ImageUse, oldImage string, kc authn.Keychain, platforms []diagnose.Platform) (f *Finding, complete, keep bool) {
	primary := platforms[0]
	res := c.prober.Probe(ctx, u.Image, kc, primary)
	if ctx.Err() != nil {
		return nil, false, false
	}
	host := displayHost(u.Image)
	if res.OK {
		// An index answers for every platform at once: a node platform
		// it lacks fails that node's pulls.
		if len(res.Platforms) > 0 {
			for _, p := range platforms[1:] {
				if !slices.ContainsFunc(res.Platforms, func(have diagnose.Platform) bool { return samePlatform(have, p) }) {
					return &Finding{Container: u.Container, Image: u.Image, Cause: diagnose.PlatformMismatch, Deniable: true,
						Text: fmt.Sprintf("image %s: %s offers %s, not %s, which nodes run", u.Image, host, platformList(res.Platforms), p)}, true, true
				}
			}
		}
		return nil, true, true
	}
	words, deniable, ok := findingWords(res, u.Image, host, primary)
	if !ok {
		// Timeouts, refused connections, 5xx, rate limits, a refusal of
		// the pod's credentials: nothing the registry showed about the
		// image itself, or something the nodes may see otherwise.
		c.log.DebugContext(ctx, "admission: no warning for this answer", "image", u.Image, "cause", res.Cause, "detail", res.Detail)
		return nil, true, res.Reached()
	}
	f = &Finding{Container: u.Container, Image: u.Image, Cause: res.Cause, Deniable: deniable, Text: "image " + u.Image + ": " + words}
	if c.diag == nil {
		return f, true, true
	}
	t := diagnose.Target{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Container: u.Container, Image: u.Image, Platform: primary}
	if oldImage != "" && oldImage != u.Image {
		t.Hints = []diagnose.Hint{{Image: oldImage, Kind: diagnose.CandidateLastHealthy, Note: "the image before this change"}}
	}
	if c.lookup != nil {
		// What the namespace runs: the same repository under another tag,
		// and the repository names on that registry (many registries,
		// public.ecr.aws among them, have no catalog to search).
		t.Lookup = func(ctx context.Context) ([]diagnose.Hint, []string) {
			return c.lookup.Lookup(ctx, c.log, w.Namespace, u.Image)
		}
	}
	d := c.diag.Diagnose(ctx, t, kc)
	if ctx.Err() != nil {
		return f, false, false
	}
	if len(d.Candidates) > 0 {
		f.Candidate = d.Candidates[0].Image
		f.Text += "; " + f.Candidate + " exists"
	}
	return f, true, true
}

// findingWords says, in the registry's terms, why image will not pull;
// ok is false for answers that are not warned about.
func findingWords(res diagnose.ProbeResult, image, host string, platform diagnose.Platform) (words string, deniable, ok bool) {
	switch res.Cause {
	case diagnose.RepoNotFound:
		return "repository not found at " + host, true, true
	case diagnose.TagNotFound:
		return fmt.Sprintf("tag %s not found at %s", identifier(image), host), true, true
	case diagnose.DigestNotFound:
		return fmt.Sprintf("manifest %s not found at %s", identifier(image), host), true, true
	case diagnose.ImageNotFound:
		return "not found at " + host, true, true
	case diagnose.NotFoundOrUnauthorized:
		return host + " refused the pull credentials the pods would use, without saying whether the image exists", false, true
	case diagnose.PlatformMismatch:
		if len(res.Platforms) > 0 {
			return fmt.Sprintf("%s offers %s, not %s, which nodes run", host, platformList(res.Platforms), platform), true, true
		}
		return fmt.Sprintf("%s has no %s image, which nodes run", host, platform), true, true
	}
	return "", false, false
}

// invalidReference is the kubelet's own check (InvalidImageName), offline.
func invalidReference(u ImageUse) *Finding {
	err := diagnose.CheckReference(u.Image)
	if err == nil {
		return nil
	}
	reason := err.Error()
	var re *diagnose.ReferenceError
	if errors.As(err, &re) && re.Reason != "" {
		reason = re.Reason
	}
	return &Finding{Container: u.Container, Image: u.Image, Cause: diagnose.InvalidReference, Deniable: true,
		Text: fmt.Sprintf("image %q: not a valid image reference (%s)", u.Image, reason)}
}

// keychain builds the credentials the kubelet would use for w's pods: the
// pod template's imagePullSecrets, or — when it names none — its service
// account's (the ServiceAccount admission plugin copies them into the pod
// only then), then the bot's ECR identity. credKey names them (with each
// Secret's resourceVersion), for the answer cache.
func (c *Checker) keychain(ctx context.Context, w *Workload) (authn.Keychain, string) {
	if !c.readSecrets || c.cs == nil {
		return creds.ForPod(&creds.PullSecretKeychain{}, c.ecr), "anonymous"
	}
	var names []string
	for _, r := range w.Spec.ImagePullSecrets {
		names = append(names, r.Name)
	}
	if len(names) == 0 {
		sa := w.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		// list with a field selector: the bot's RBAC lists service
		// accounts (for pull-secret discovery) and never needs get.
		l, err := c.cs.CoreV1().ServiceAccounts(w.Namespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("metadata.name", sa).String()})
		if err != nil {
			c.log.DebugContext(ctx, "admission: service account unreadable; its pull secrets are not used", "namespace", w.Namespace, "serviceAccount", sa, "err", err)
		} else if len(l.Items) == 1 {
			for _, r := range l.Items[0].ImagePullSecrets {
				names = append(names, r.Name)
			}
		}
	}
	secrets := make([]*corev1.Secret, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			s, err := c.cs.CoreV1().Secrets(w.Namespace).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				c.log.DebugContext(ctx, "admission: pull secret unreadable; checked without it", "namespace", w.Namespace, "secret", n, "err", err)
				return
			}
			secrets[i] = s
		})
	}
	wg.Wait()
	secrets = slices.DeleteFunc(secrets, func(s *corev1.Secret) bool { return s == nil })
	var key []string
	for _, s := range secrets {
		key = append(key, s.Namespace+"/"+s.Name+"@"+s.ResourceVersion)
	}
	kc, _ := creds.KeychainFromSecrets(secrets)
	if len(key) == 0 {
		return creds.ForPod(kc, c.ecr), "anonymous"
	}
	return creds.ForPod(kc, c.ecr), strings.Join(key, ",")
}

// platforms returns the distinct OS/architectures of the nodes, the most
// common first; linux/amd64 when there are no nodes or they cannot be
// listed. The list is cached (NodesTTL): nodes change platform rarely.
func (c *Checker) platforms(ctx context.Context) []diagnose.Platform {
	def := []diagnose.Platform{{OS: "linux", Architecture: "amd64"}}
	c.mu.Lock()
	n := c.nodes
	c.mu.Unlock()
	if n.platforms != nil && time.Since(n.at) < c.nodesTTL {
		return n.platforms
	}
	if c.cs == nil {
		return def
	}
	count := map[diagnose.Platform]int{}
	opts := metav1.ListOptions{Limit: 500, ResourceVersion: "0"}
	for page := 0; page < 20; page++ {
		l, err := c.cs.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			c.log.DebugContext(ctx, "admission: nodes unreadable; checking for linux/amd64", "err", err)
			return def
		}
		for _, nd := range l.Items {
			p := diagnose.Platform{OS: nd.Status.NodeInfo.OperatingSystem, Architecture: nd.Status.NodeInfo.Architecture}
			if p.OS == "" {
				p.OS = nd.Labels[corev1.LabelOSStable]
			}
			if p.Architecture == "" {
				p.Architecture = nd.Labels[corev1.LabelArchStable]
			}
			if p.OS != "" && p.Architecture != "" {
				count[p]++
			}
		}
		if l.Continue == "" {
			break
		}
		opts = metav1.ListOptions{Limit: 500, Continue: l.Continue}
	}
	out := make([]diagnose.Platform, 0, len(count))
	for p := range count {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if count[out[i]] != count[out[j]] {
			return count[out[i]] > count[out[j]]
		}
		return out[i].String() < out[j].String()
	})
	if len(out) == 0 {
		out = def
	}
	c.mu.Lock()
	c.nodes = nodePlatforms{at: time.Now(), platforms: out}
	c.mu.Unlock()
	return out
}

func platformKey(ps []diagnose.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

func platformList(ps []diagnose.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

func samePlatform(have, want diagnose.Platform) bool {
	return have.OS == want.OS && have.Architecture == want.Architecture &&
		(want.Variant == "" || have.Variant == "" || have.Variant == want.Variant)
}

// displayHost is the registry as people write it ("docker.io", not
// "index.docker.io").
func displayHost(image string) string {
	ref, err := name.ParseReference(image)
	if err != nil {
		return ""
	}
	h := ref.Context().RegistryStr()
	if h == name.DefaultRegistry {
		return "docker.io"
	}
	return h
}

func identifier(image string) string {
	ref, err := name.ParseReference(image)
	if err != nil {
		return ""
	}
	return ref.Identifier()
}
