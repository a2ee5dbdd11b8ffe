package watch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/creds"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// inputs gathers what diagnosis needs from the cluster, on demand: the pod's
// pull secrets, its node's platform, and the workload's revision history.
type inputs struct {
	cs kubernetes.Interface

	// ecr is the node-side credential provider the kubelet would consult
	// after the pod's pull secrets: the bot's own AWS identity for private
	// ECR registries. Nil (absent) unless the environment names AWS
	// credentials.
	ecr *creds.ECRKeychain

	// bg holds the hint look-ups started ahead of the diagnosis; wait
	// waits for them.
	bg sync.WaitGroup

	mu        sync.Mutex
	platforms map[string]diagnose.Platform // node name → platform
	// images caches, per namespace, the images its workloads run, so a
	// storm of incidents in one namespace lists them once per nsImagesTTL
	// instead of once per diagnosis.
	images  map[string]nsImages
	listing singleflight.Group // by namespace
}

// nsImages is what clusterImages keeps of one namespace's workloads: only
// their images, not the objects.
type nsImages struct {
	at    time.Time
	items []workloadImage
}

// workloadImage is one container image of a workload's pod template.
type workloadImage struct {
	workload, image string // workload: "Deployment ui-stable"
	// runningReady: the workload has rolled this template out and has
	// Ready pods, so the image runs Ready in the cluster.
	runningReady bool
}

// nsImagesTTL bounds how stale the in-cluster hints may be.
const nsImagesTTL = 30 * time.Second

// namespaceImages returns the images the namespace's Deployments,
// StatefulSets and DaemonSets run, from the cache when fresh. It reads the
// workloads, not their pods: a namespace has tens of times fewer of them,
// and in a storm every namespace is listed at once — listing 500 pods per
// namespace made most of the bot's allocations in the benchmark. Pods of
// Jobs and bare Pods are not seen. Concurrent diagnoses in one namespace
// share one listing.
func (in *inputs) namespaceImages(ctx context.Context, ns string) ([]workloadImage, error) {
	in.mu.Lock()
	c, ok := in.images[ns]
	in.mu.Unlock()
	if ok && time.Since(c.at) < nsImagesTTL {
		return c.items, nil
	}
	v, err, _ := in.listing.Do(ns, func() (any, error) { return in.listNamespaceImages(ctx, ns) })
	if err != nil {
		return nil, err
	}
	return v.([]workloadImage), nil
}

func (in *inputs) listNamespaceImages(ctx context.Context, ns string) ([]workloadImage, error) {
	var items []workloadImage
	add := func(kind, name string, spec *corev1.PodSpec, ready bool) {
		for _, ctr := range spec.Containers {
			items = append(items, workloadImage{workload: kind + " " + name, image: ctr.Image, runningReady: ready})
		}
		for _, v := range spec.Volumes {
			if v.Image != nil { // an image volume's reference is an image too
				items = append(items, workloadImage{workload: kind + " " + name, image: v.Image.Reference, runningReady: ready})
			}
		}
	}
	var errs []error
	listed := 0
	for _, k := range workload.Kinds {
		if !k.HasRollout() {
			continue
		}
		listed++
		errs = append(errs, listPages(ctx, func(ctx context.Context, o metav1.ListOptions) (string, int, error) {
			l, err := k.List(ctx, in.cs, ns, o)
			if err != nil {
				return "", 0, err
			}
			objs, err := meta.ExtractList(l)
			if err != nil {
				return "", 0, err
			}
			for _, o := range objs {
				obj := o.(workload.Object)
				add(k.Name, obj.GetName(), k.PodSpec(obj), k.Rollout(obj).Serving)
			}
			next := ""
			if la, err := meta.ListAccessor(l); err == nil {
				next = la.GetContinue()
			}
			return next, len(objs), nil
		}))
	}
	if errs = slices.DeleteFunc(errs, func(err error) bool { return err == nil }); len(errs) == listed {
		return nil, errors.Join(errs...)
	}
	in.mu.Lock()
	if in.images == nil {
		in.images = map[string]nsImages{}
	}
	for k, v := range in.images {
		if time.Since(v.at) >= nsImagesTTL {
			delete(in.images, k)
		}
	}
	in.images[ns] = nsImages{at: time.Now(), items: items}
	in.mu.Unlock()
	return items, nil
}

// listPages reads a list a page of clusterListPage objects at a time, up
// to clusterListLimit objects.
func listPages(ctx context.Context, page func(context.Context, metav1.ListOptions) (next string, n int, err error)) error {
	opts := metav1.ListOptions{Limit: clusterListPage}
	for seen := 0; seen < clusterListLimit; {
		next, n, err := page(ctx, opts)
		if err != nil {
			return err
		}
		seen += n
		if next == "" || n == 0 {
			return nil
		}
		opts.Continue = next
	}
	return nil
}

// wait waits for the look-ups started ahead of diagnoses; each ends with
// the context it was started with.
func (in *inputs) wait() { in.bg.Wait() }

func newInputs(cs kubernetes.Interface) *inputs {
	return &inputs{cs: cs, platforms: map[string]diagnose.Platform{}, ecr: creds.ECRKeychainFromEnv(os.Getenv)}
}

// target builds the diagnosis target for the incident's container in pod,
// and a keychain holding the pod's own pull secrets (then the bot's ECR
// identity, when it has one, as the kubelet's credential provider).
//
// The node's platform and the pull secrets are read at once, in parallel.
// The hints (the Deployment's revisions, the images running in the
// namespace) cost a Deployment read, a ReplicaSet list and a page of pods,
// and only causes fixed by another image need them: they are read in the
// background from the start when the kubelet's words point that way, and
// handed to the diagnoser through Target.Lookup, which waits for them only
// when the diagnosis calls for candidates.
func (in *inputs) target(ctx context.Context, log *slog.Logger, k Key, pod *corev1.Pod) (diagnose.Target, authn.Keychain) {
	t := podTarget(k, pod)
	type looked struct {
		hints []diagnose.Hint
		known []string
	}
	lookup := sync.OnceValue(func() looked {
		var l looked
		var wg sync.WaitGroup
		var revHints []diagnose.Hint
		if k.Kind == "Deployment" {
			wg.Go(func() { revHints = in.revisionHints(ctx, log, k) })
		}
		inCluster, known := in.clusterImages(ctx, log, k)
		wg.Wait()
		l.hints, l.known = appendHints(revHints, inCluster), known
		return l
	})
	if prefetchHints(diagnose.Classify(t.Reason, t.Message).Cause) {
		in.bg.Go(func() { lookup() })
	}
	t.Lookup = func(context.Context) ([]diagnose.Hint, []string) {
		l := lookup()
		return l.hints, l.known
	}

	var wg sync.WaitGroup
	wg.Go(func() { t.Platform = in.platform(ctx, pod.Spec.NodeName) })
	secrets := make([]*corev1.Secret, len(pod.Spec.ImagePullSecrets))
	for i, ref := range pod.Spec.ImagePullSecrets {
		wg.Go(func() {
			s, err := in.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				// The kubelet skips a missing pull secret too; say so and go on.
				log.Warn("pull secret unreadable; probing without it", "namespace", pod.Namespace, "secret", ref.Name, "err", err)
				return
			}
			secrets[i] = s
		})
	}
	wg.Wait()
	// In the pod's order, as the kubelet tries them.
	secrets = slices.DeleteFunc(secrets, func(s *corev1.Secret) bool { return s == nil })
	secretsKC, errs := creds.KeychainFromSecrets(secrets)
	for _, err := range errs {
		log.Warn("pull secret ignored", "err", err)
	}
	return t, creds.ForPod(secretsKC, in.ecr)
}

// podTarget is the part of the target the pod itself holds: the incident's
// key, the kubelet's words in the container's status, and the names of the
// credentials the kubelet uses. It sends no request.
func podTarget(k Key, pod *corev1.Pod) diagnose.Target {
	t := diagnose.Target{
		Cluster: k.Cluster, Namespace: k.Namespace, Kind: k.Kind, Name: k.Name,
		Container: k.Container, Image: k.Image, ServiceAccount: pod.Spec.ServiceAccountName,
	}
	for _, fc := range workload.FailingContainers(pod) {
		if fc.Name == k.Container {
			t.Reason, t.Message = fc.Reason, fc.Message
			break
		}
	}
	for _, ref := range pod.Spec.ImagePullSecrets {
		t.PullSecrets = append(t.PullSecrets, ref.Name)
	}
	return t
}

// prefetchHints says whether the kubelet's cause points to a fix by another
// image, so the hints are worth reading before the probe answers.
func prefetchHints(c diagnose.Cause) bool { return c.FixedByImage() }

// Bounds on the in-cluster look-up: a few pages of workloads per namespace,
// and a handful of hints so candidate verification stays within its budget.
const (
	clusterListLimit = 500 // objects of each kind per namespace
	clusterListPage  = 100
	clusterHintLimit = 5
)

// clusterImages lists the incident's namespace once and returns (a) the
// images of the failing image's repository that run Ready elsewhere under
// another tag or digest — a person fixing a bad tag looks there first — and
// (b) the repositories seen on the failing image's registry, which the
// diagnoser compares names against when the registry has no catalog.
func (in *inputs) clusterImages(ctx context.Context, log *slog.Logger, k Key) ([]diagnose.Hint, []string) {
	failing, err := name.ParseReference(k.Image)
	if err != nil {
		return nil, nil
	}
	repo := failing.Context()
	items, err := in.namespaceImages(ctx, k.Namespace)
	if err != nil {
		log.Debug("workloads unreadable; no in-cluster hints", "namespace", k.Namespace, "err", err)
		return nil, nil
	}
	canonical := canonicalRef(failing)
	var hints []diagnose.Hint
	seenImage := map[string]bool{canonical: true}
	seenRepo := map[string]bool{}
	var known []string
	for _, it := range items {
		ref, err := name.ParseReference(it.image)
		if err != nil {
			continue
		}
		ctxRepo := ref.Context()
		if ctxRepo.RegistryStr() == repo.RegistryStr() && !seenRepo[ctxRepo.Name()] {
			seenRepo[ctxRepo.Name()] = true
			known = append(known, ctxRepo.Name())
		}
		if !it.runningReady || ctxRepo.Name() != repo.Name() {
			continue
		}
		key := canonicalRef(ref)
		if seenImage[key] || len(hints) >= clusterHintLimit {
			continue
		}
		seenImage[key] = true
		hints = append(hints, diagnose.Hint{Image: it.image, Kind: diagnose.CandidateInCluster, Note: "running Ready in " + it.workload})
	}
	sort.Strings(known)
	return hints, known
}

// canonicalRef is a reference's fully qualified form, so "nginx:1" and
// "index.docker.io/library/nginx:1" count as one image.
func canonicalRef(ref name.Reference) string {
	return ref.Context().Name() + "@" + ref.Identifier()
}

// appendHints adds extra after hints, skipping images already hinted
// (revision hints come first: they are the stronger evidence).
func appendHints(hints, extra []diagnose.Hint) []diagnose.Hint {
	seen := map[string]bool{}
	for _, h := range hints {
		if ref, err := name.ParseReference(h.Image); err == nil {
			seen[canonicalRef(ref)] = true
		}
	}
	for _, h := range extra {
		ref, err := name.ParseReference(h.Image)
		if err != nil || seen[canonicalRef(ref)] {
			continue
		}
		seen[canonicalRef(ref)] = true
		hints = append(hints, h)
	}
	return hints
}

// platform returns the node's OS/architecture, linux/amd64 when unknown.
func (in *inputs) platform(ctx context.Context, node string) diagnose.Platform {
	def := diagnose.Platform{OS: "linux", Architecture: "amd64"}
	if node == "" {
		return def
	}
	in.mu.Lock()
	p, ok := in.platforms[node]
	in.mu.Unlock()
	if ok {
		return p
	}
	n, err := in.cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return def
	}
	p = diagnose.Platform{OS: n.Status.NodeInfo.OperatingSystem, Architecture: n.Status.NodeInfo.Architecture}
	if p.OS == "" {
		p.OS = n.Labels[corev1.LabelOSStable]
	}
	if p.Architecture == "" {
		p.Architecture = n.Labels[corev1.LabelArchStable]
	}
	if p.OS == "" || p.Architecture == "" {
		return def
	}
	in.mu.Lock()
	in.platforms[node] = p
	in.mu.Unlock()
	return p
}

// revisionHints returns the container's image in earlier revisions of the
// Deployment, newest first: the last healthy revision is the first candidate
// a person would roll back to.
func (in *inputs) revisionHints(ctx context.Context, log *slog.Logger, k Key) []diagnose.Hint {
	d, err := in.cs.AppsV1().Deployments(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil
	}
	rss, err := in.cs.AppsV1().ReplicaSets(k.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		log.Debug("replica sets unreadable", "err", err)
		return nil
	}
	type rev struct {
		n     int
		image string
		ready int32
	}
	var revs []rev
	for i := range rss.Items {
		rs := &rss.Items[i]
		if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID {
			continue
		}
		n, _ := strconv.Atoi(rs.Annotations["deployment.kubernetes.io/revision"])
		img := containerImage(rs, k.Container)
		if img == "" || img == k.Image {
			continue
		}
		revs = append(revs, rev{n: n, image: img, ready: rs.Status.ReadyReplicas})
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i].n > revs[j].n })
	var hints []diagnose.Hint
	seen := map[string]bool{}
	for _, r := range revs {
		if seen[r.image] {
			continue
		}
		seen[r.image] = true
		note := "revision " + strconv.Itoa(r.n) + " of " + k.Name
		if r.ready > 0 {
			note += " (" + strconv.Itoa(int(r.ready)) + " ready pods)"
		}
		hints = append(hints, diagnose.Hint{Image: r.image, Kind: diagnose.CandidateLastHealthy, Note: note})
	}
	return hints
}

func containerImage(rs *appsv1.ReplicaSet, container string) string {
	return workload.TemplateImage(&rs.Spec.Template.Spec, container)
}

// workloadReady reports whether the workload has rolled out and all its
// pods are ready (workload.Rollout.Done). A workload that no longer exists,
// or a kind without a rollout (Jobs, CronJobs, bare Pods: no failing pod
// left is the evidence), counts as resolved.
func (in *inputs) workloadReady(ctx context.Context, k Key) (bool, error) {
	r, _, err := workload.Status(ctx, in.cs, k.Namespace, k.Workload)
	return r.Done, err
}
