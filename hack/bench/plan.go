package main

import (
	"fmt"
	"strings"
)

// Registry host names as the pods' image references spell them; each is
// mirrored to a loopback registry, for the kubelet simulator and the bot
// alike (PULLFIX_REGISTRY_MIRRORS), as a containerd hosts.toml would.
const (
	hostECR     = "public.ecr.aws"        // the runbook's registry: healthy images and not-found typos
	hostHub     = "docker.io"             // Docker Hub: healthy images and a tag typo
	hostPrivate = "registry.corp.example" // answers 401 to everyone: no pull secret
	hostHole    = "quay.io"               // a black hole: accepts, never answers
)

// healthyImages exist in the registries; running pods use them.
var healthyImages = []string{
	hostECR + "/aws-containers/retail-store-sample-ui:1.2.1",
	hostECR + "/aws-containers/retail-store-sample-catalog:1.2.1",
	hostECR + "/aws-containers/retail-store-sample-cart:1.2.1",
	hostECR + "/aws-containers/retail-store-sample-orders:1.2.1",
	hostECR + "/aws-containers/retail-store-sample-checkout:1.2.1",
	"nginx:1.27",
	"redis:7.4",
}

// seed lists what each registry holds ("repo:tag"): the healthy images and
// a few neighbours the diagnosis can offer as candidates.
var seed = map[string][]string{
	hostECR: {
		"aws-containers/retail-store-sample-ui:1.2.1", "aws-containers/retail-store-sample-ui:1.2.0",
		"aws-containers/retail-store-sample-ui:1.1.0",
		"aws-containers/retail-store-sample-catalog:1.2.1", "aws-containers/retail-store-sample-cart:1.2.1",
		"aws-containers/retail-store-sample-orders:1.2.1", "aws-containers/retail-store-sample-checkout:1.2.1",
	},
	hostHub: {"library/nginx:1.27", "library/nginx:1.26", "library/redis:7.4", "library/redis:7.2"},
}

// cause is one way the failing workloads fail.
type cause struct {
	Key    string // short, part of the workload name
	Expect string // the diagnosis we aim to provoke (design §3)
	// images are picked in turn by the workloads of this cause; fewer
	// images than workloads means workloads share an image.
	images func(j int) string
}

// causes, in the order workloads are dealt to them. Not-found typos share
// three images per cause (several teams copying one wrong line); the 401
// and black-hole registries get one image per workload, all of one cause
// and one registry: the storm pullfix should post as one grouped message.
var causes = []cause{
	{Key: "repo", Expect: "repo_not_found", images: pick(
		hostECR+"/aws-containers/retailing-store-sample-ui:1.2.1",
		hostECR+"/aws-containers/retail-store-sample-cartt:1.2.1",
		hostECR+"/aws-containers/retail-store-sampel-orders:1.2.1")},
	{Key: "tag", Expect: "tag_not_found", images: pick(
		hostECR+"/aws-containers/retail-store-sample-ui:1.2.10",
		hostECR+"/aws-containers/retail-store-sample-catalog:1.3.0",
		hostECR+"/aws-containers/retail-store-sample-checkout:1.2.2")},
	{Key: "hubtag", Expect: "tag_not_found", images: pick("nginx:1.277", "redis:7.4.99", "nginx:1.72")},
	{Key: "auth", Expect: "unauthorized", images: func(j int) string {
		return fmt.Sprintf("%s/platform/svc-%02d:2.0", hostPrivate, j)
	}},
	{Key: "timeout", Expect: "network_timeout", images: func(j int) string {
		return fmt.Sprintf("%s/acme/worker-%02d:3.1", hostHole, j)
	}},
}

func pick(images ...string) func(int) string {
	return func(j int) string { return images[j%len(images)] }
}

// failingWorkload is one Deployment whose pods cannot pull.
type failingWorkload struct {
	Namespace string
	Name      string
	Image     string
	Cause     string // the cause we aim for
	Replicas  int
}

// healthyWorkload is one Deployment of running pods.
type healthyWorkload struct {
	Namespace string
	Name      string
	Image     string
	Replicas  int
}

// plan deals the pods: healthy Deployments of at most perDeploy replicas
// and m failing Deployments sharing k pods, spread over the namespaces.
func plan(pods, failing, workloads, namespaces, perDeploy int) ([]healthyWorkload, []failingWorkload) {
	ns := func(i int) string { return fmt.Sprintf("bench-%02d", i%namespaces) }
	var healthy []healthyWorkload
	left := pods - failing
	for i := 0; left > 0; i++ {
		n := min(perDeploy, left)
		left -= n
		healthy = append(healthy, healthyWorkload{
			Namespace: ns(i), Name: fmt.Sprintf("run-%04d", i), Image: healthyImages[i%len(healthyImages)], Replicas: n,
		})
	}
	var bad []failingWorkload
	perCause := map[string]int{}
	for i := range workloads {
		c := causes[i%len(causes)]
		j := perCause[c.Key]
		perCause[c.Key]++
		n := failing / workloads
		if i < failing%workloads {
			n++
		}
		bad = append(bad, failingWorkload{
			Namespace: ns(i), Name: fmt.Sprintf("fail-%03d-%s", i, c.Key), Image: c.images(j), Cause: c.Expect, Replicas: n,
		})
	}
	return healthy, bad
}

// uniqueImages counts the distinct images of the failing workloads.
func uniqueImages(bad []failingWorkload) int {
	seen := map[string]bool{}
	for _, w := range bad {
		seen[w.Image] = true
	}
	return len(seen)
}

// mirrorsEnv is PULLFIX_REGISTRY_MIRRORS for the registries.
func mirrorsEnv(m map[string]string) string {
	var parts []string
	for _, h := range []string{hostECR, hostHub, hostPrivate, hostHole} {
		if v, ok := m[h]; ok {
			parts = append(parts, h+"="+v)
		}
	}
	return strings.Join(parts, ",")
}
