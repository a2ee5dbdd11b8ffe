package diagnose

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// sample is one record of testdata/pull-errors.jsonl: a real kubelet or
// runtime message, the causes a reader of the text alone may answer, and
// where it was found.
type sample struct {
	Message string  `json:"message"`
	Reason  string  `json:"reason"`
	Runtime string  `json:"runtime"`
	Cause   Cause   `json:"cause"`
	Accept  []Cause `json:"accept"`
	Source  string  `json:"source"`
	Note    string  `json:"note,omitempty"`
}

func loadSamples(t testing.TB) []sample {
	t.Helper()
	f, err := os.Open("testdata/pull-errors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []sample
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var s sample
			if jerr := json.Unmarshal(line, &s); jerr != nil {
				t.Fatalf("testdata line %d: %v", n, jerr)
			}
			if s.Source == "" || len(s.Accept) == 0 {
				t.Fatalf("testdata line %d: every record needs accept and source", n)
			}
			out = append(out, s)
		}
		if err != nil {
			break
		}
	}
	return out
}

// TestClassifySamples checks every real message against the causes its
// thread allows and logs the accuracy per cause, the number the issue asks
// for in its closing note.
func TestClassifySamples(t *testing.T) {
	samples := loadSamples(t)
	type tally struct{ n, ok int }
	per := map[Cause]*tally{}
	var misses []string
	for _, s := range samples {
		c := Classify(s.Reason, s.Message)
		// Tally by the cause the thread established, so a record the text
		// cannot decide (accept holds more than one) counts where it belongs.
		tl := per[s.Cause]
		if tl == nil {
			tl = &tally{}
			per[s.Cause] = tl
		}
		if s.Note != "" {
			t.Logf("  note (%s): %s", s.Source, s.Note)
		}
		tl.n++
		if slices.Contains(s.Accept, c.Cause) {
			tl.ok++
		} else {
			misses = append(misses, string(c.Cause)+" not in "+strings.Trim(strings.Join(causeStrings(s.Accept), ","), ",")+": "+s.Source)
			t.Errorf("Classify(%q, %q).Cause = %s, want one of %v (source %s)", s.Reason, s.Message, c.Cause, s.Accept, s.Source)
		}
		if c.Evidence != "" && !strings.Contains(s.Message, c.Evidence) {
			t.Errorf("evidence %q is not a substring of %q", c.Evidence, s.Message)
		}
		if s.Runtime != "" && s.Runtime != "unknown" && c.Runtime != RuntimeUnknown && string(c.Runtime) != s.Runtime {
			t.Errorf("runtime of %q = %s, labelled %s", s.Message, c.Runtime, s.Runtime)
		}
	}
	keys := make([]string, 0, len(per))
	total, ok := 0, 0
	for k, v := range per {
		keys = append(keys, string(k))
		total += v.n
		ok += v.ok
	}
	sort.Strings(keys)
	t.Logf("sample accuracy: %d/%d", ok, total)
	for _, k := range keys {
		v := per[Cause(k)]
		t.Logf("  %-26s %2d/%2d", k, v.ok, v.n)
	}
	for _, m := range misses {
		t.Logf("  miss: %s", m)
	}
}

func causeStrings(cs []Cause) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

// TestClassify covers each cause and each wrapper the kubelet and the
// runtimes put around an error. The messages follow the runtimes' error
// formats; the sample file holds the verbatim real ones.
func TestClassify(t *testing.T) {
	const hubDigest = "sha256:8d0bff43db3ce5c528cb6f957520511d263d7cceee012696e4afdc9087919bb9"
	tests := []struct {
		name     string
		reason   string
		msg      string
		cause    Cause
		evidence string // a substring the evidence must contain
		image    string
		registry string
		runtime  Runtime
	}{
		{
			name:     "repo not found, NAME_UNKNOWN from ECR Public via CRI-O",
			msg:      `Failed to pull image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": initializing source docker://public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1: reading manifest 1.2.1 in public.ecr.aws/aws-containers/retailing-store-sample-ui: name unknown: The repository with name 'retailing-store-sample-ui' does not exist in the registry with id 'aws-containers'`,
			cause:    RepoNotFound,
			evidence: "name unknown",
			image:    "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1",
			registry: "public.ecr.aws",
			runtime:  RuntimeCRIO,
		},
		{
			name:     "repo not found, containerd flattening with a mirror prefix before a full reference",
			msg:      `Failed to pull image "mirror.example.com/ghcr.io/org/app:1.0": rpc error: code = NotFound desc = failed to pull and unpack image "mirror.example.com/ghcr.io/org/app:1.0": failed to resolve reference "mirror.example.com/ghcr.io/org/app:1.0": mirror.example.com/ghcr.io/org/app:1.0: not found`,
			cause:    RepoNotFound,
			registry: "mirror.example.com",
			runtime:  RuntimeContainerd,
		},
		{
			name:     "image not found, containerd 1.28+ stripped prefix: the bare not found does not say repository or tag",
			reason:   "ErrImagePull",
			msg:      `failed to pull and unpack image "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.9": failed to resolve reference "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.9": public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.9: not found`,
			cause:    ImageNotFound,
			evidence: "1.2.9: not found",
			image:    "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.9",
			registry: "public.ecr.aws",
			runtime:  RuntimeContainerd,
		},
		{
			name:     "tag not found, Docker short name normalised to docker.io",
			msg:      `Failed to pull image "nginx:1.99": rpc error: code = Unknown desc = Error response from daemon: manifest for nginx:1.99 not found: manifest unknown: manifest unknown`,
			cause:    TagNotFound,
			image:    "nginx:1.99",
			registry: "docker.io",
			runtime:  RuntimeDocker,
		},
		{
			name:     "digest not found, containerd pinned digest",
			msg:      `Failed to pull image "quay.io/org/app@` + hubDigest + `": rpc error: code = NotFound desc = failed to pull and unpack image "quay.io/org/app@` + hubDigest + `": failed to resolve reference "quay.io/org/app@` + hubDigest + `": quay.io/org/app@` + hubDigest + `: not found`,
			cause:    DigestNotFound,
			image:    "quay.io/org/app@" + hubDigest,
			registry: "quay.io",
		},
		{
			name:     "not found or unauthorized, Docker Hub insufficient_scope",
			msg:      `Failed to pull image "acme/private:1": failed to pull and unpack image "docker.io/acme/private:1": failed to resolve reference "docker.io/acme/private:1": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`,
			cause:    NotFoundOrUnauthorized,
			evidence: "pull access denied",
			registry: "docker.io",
		},
		{
			name:     "not found or unauthorized, anonymous token refused by Harbor",
			msg:      `Failed to pull image "registry.example.com/team/app:1": rpc error: code = Unknown desc = failed to pull and unpack image "registry.example.com/team/app:1": failed to resolve reference "registry.example.com/team/app:1": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://registry.example.com/service/token?scope=repository%3Ateam%2Fapp%3Apull&service=harbor-registry: 401 Unauthorized`,
			cause:    NotFoundOrUnauthorized,
			evidence: "401 Unauthorized",
		},
		{
			name:     "access denied, ECR IAM",
			msg:      `Failed to pull image "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1": failed to pull and unpack image "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1": failed to resolve reference "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1": unexpected status from HEAD request to https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/app/manifests/1: 403 Forbidden`,
			cause:    AccessDenied,
			registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
		},
		{
			name:  "credentials expired, ECR token",
			msg:   `Failed to pull image "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1": rpc error: code = Unknown desc = Error response from daemon: pull access denied for 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app, repository does not exist or may require 'docker login': denied: Your authorization token has expired. Reauthenticate and try again.`,
			cause: CredentialsExpired,
		},
		{
			name:     "rate limited, containerd 2.x multi-line body",
			msg:      "Failed to pull image \"redis:7\": failed to pull and unpack image \"docker.io/library/redis:7\": failed to resolve reference \"docker.io/library/redis:7\": unexpected status from HEAD request to https://registry-1.docker.io/v2/library/redis/manifests/7: 429 Too Many Requests\ntoomanyrequests: You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit",
			cause:    RateLimited,
			evidence: "429 Too Many Requests",
			registry: "docker.io",
		},
		{
			name:     "dns failure wins over the lookup's timeout",
			msg:      `Failed to pull image "registry.internal:5000/app:1": rpc error: code = DeadlineExceeded desc = failed to pull and unpack image "registry.internal:5000/app:1": failed to resolve reference "registry.internal:5000/app:1": failed to do request: Head "https://registry.internal:5000/v2/app/manifests/1": dial tcp: lookup registry.internal on 10.96.0.10:53: read udp 10.0.0.5:41234->10.96.0.10:53: i/o timeout`,
			cause:    DNSFailure,
			evidence: "lookup registry.internal",
			registry: "registry.internal:5000",
		},
		{
			name:  "dns failure, server misbehaving",
			msg:   `Failed to pull image "ghcr.io/org/app:1": failed to pull and unpack image "ghcr.io/org/app:1": failed to resolve reference "ghcr.io/org/app:1": failed to do request: Head "https://ghcr.io/v2/org/app/manifests/1": dial tcp: lookup ghcr.io: server misbehaving`,
			cause: DNSFailure,
		},
		{
			name:     "network timeout, numeric gRPC code 4 with no words",
			msg:      `Failed to pull image "gcr.io/google_containers/pause:3.0": rpc error: code = 4 desc = context deadline exceeded`,
			cause:    NetworkTimeout,
			evidence: "context deadline exceeded",
			registry: "gcr.io",
		},
		{
			name:     "connection refused, numeric gRPC code 2",
			msg:      `Failed to pull image "localhost:5000/app:1": rpc error: code = 2 desc = Error response from daemon: {"message":"Get http://localhost:5000/v2/: dial tcp 127.0.0.1:5000: getsockopt: connection refused"}`,
			cause:    ConnectionRefused,
			registry: "localhost:5000",
			runtime:  RuntimeDocker,
		},
		{
			name:     "tls error",
			msg:      `Failed to pull image "harbor.corp/app:1": rpc error: code = Unknown desc = failed to pull and unpack image "harbor.corp/app:1": failed to resolve reference "harbor.corp/app:1": failed to do request: Head "https://harbor.corp/v2/app/manifests/1": x509: certificate is valid for ingress.local, not harbor.corp`,
			cause:    TLSError,
			evidence: "x509: certificate is valid for",
		},
		{
			name:  "http vs https, CRI-O",
			msg:   `Failed to pull image "10.0.0.7:5000/app:1": rpc error: code = Unknown desc = pinging container registry 10.0.0.7:5000: Get "https://10.0.0.7:5000/v2/": http: server gave HTTP response to HTTPS client`,
			cause: HTTPVsHTTPS,
		},
		{
			name:     "platform mismatch, CRI-O",
			msg:      `Failed to pull image "quay.io/org/app:1": rpc error: code = Unknown desc = choosing image instance: no image found in manifest list for architecture arm64, variant "v8", OS linux`,
			cause:    PlatformMismatch,
			runtime:  RuntimeCRIO,
			registry: "quay.io",
		},
		{
			name:     "invalid reference, unrendered template",
			reason:   "InspectFailed",
			msg:      `Failed to apply default image tag "${REGISTRY}/app:latest": couldn't parse image reference "${REGISTRY}/app:latest": invalid reference format`,
			cause:    InvalidReference,
			image:    "${REGISTRY}/app:latest",
			registry: "",
		},
		{
			name:   "invalid reference from the reason alone",
			reason: "InvalidImageName",
			msg:    "",
			cause:  InvalidReference,
		},
		{
			name:  "never pull",
			msg:   `Container image "app:dev" is not present with pull policy of Never`,
			cause: NeverPull,
			image: "app:dev",
		},
		{
			name:     "unpack failed, disk full",
			msg:      `Failed to pull image "big/image:1": rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/big/image:1": failed to extract layer sha256:0465d356eb1de54a583b42b392bd68ff4c6d0494ecaeb5a8b89c1001334829bf: write /var/lib/containerd/tmpmounts/containerd-mount1/usr/lib/x: no space left on device: unknown`,
			cause:    UnpackFailed,
			evidence: "failed to extract layer",
			runtime:  RuntimeContainerd,
		},
		{
			name:  "unknown, bare back-off",
			msg:   `Back-off pulling image "gcr.io/deis-sandbox/tiller:canary"`,
			cause: Unknown,
			image: "gcr.io/deis-sandbox/tiller:canary",
		},
		{
			name:     "1.32+ back-off message carries the last error",
			reason:   "ImagePullBackOff",
			msg:      `Back-off pulling image "docker.io/bitnami/jenkins:2.516.2-debian-12-r0": ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/bitnami/jenkins:2.516.2-debian-12-r0": failed to resolve reference "docker.io/bitnami/jenkins:2.516.2-debian-12-r0": docker.io/bitnami/jenkins:2.516.2-debian-12-r0: not found`,
			cause:    ImageNotFound,
			image:    "docker.io/bitnami/jenkins:2.516.2-debian-12-r0",
			registry: "docker.io",
		},
		{
			name:     "RegistryUnavailable class prefix",
			reason:   "RegistryUnavailable",
			msg:      `image pull failed for quay.io/org/app:1 because the registry is unavailable: pinging container registry quay.io: Get "https://quay.io/v2/": dial tcp 34.0.0.1:443: i/o timeout`,
			cause:    NetworkTimeout,
			image:    "quay.io/org/app:1",
			registry: "quay.io",
		},
		{
			name:     "k8s <=1.3: the no-credentials hint is ignored",
			msg:      `Failed to pull image "acme/app:v9": image pull failed for acme/app:v9, this may be because there are no credentials on this request.  details: (Tag v9 not found in repository docker.io/acme/app)`,
			cause:    TagNotFound,
			evidence: "Tag v9 not found",
			image:    "acme/app:v9",
			registry: "docker.io",
			runtime:  RuntimeDocker,
		},
		{
			name:     "bracketed list: the credential that reached the image decides",
			msg:      `Failed to pull image "registry.example.com/team/app:2": [rpc error: code = Unknown desc = failed to pull and unpack image "registry.example.com/team/app:2": failed to resolve reference "registry.example.com/team/app:2": failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized, rpc error: code = NotFound desc = failed to pull and unpack image "registry.example.com/team/app:2": failed to resolve reference "registry.example.com/team/app:2": registry.example.com/team/app:2: not found]`,
			cause:    ImageNotFound,
			evidence: "registry.example.com/team/app:2: not found",
		},
		{
			name:     "bracketed list with stripped prefixes",
			msg:      `Failed to pull image "registry.example.com/team/app:2": [failed to pull and unpack image "registry.example.com/team/app:2": failed to resolve reference "registry.example.com/team/app:2": unexpected status from HEAD request to https://registry.example.com/v2/team/app/manifests/2: 403 Forbidden, failed to pull and unpack image "registry.example.com/team/app:2": failed to resolve reference "registry.example.com/team/app:2": unexpected status from HEAD request to https://registry.example.com/v2/team/app/manifests/2: 401 Unauthorized]`,
			cause:    AccessDenied,
			evidence: "403 Forbidden",
		},
		{
			name:     "bracketed list of three: offsets stay right for every element",
			msg:      `Failed to pull image "r.example.com/a:1": [rpc error: code = Unknown desc = failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized, rpc error: code = Unknown desc = failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized, rpc error: code = Unknown desc = failed to pull and unpack image "r.example.com/a:1": no match for platform in manifest: not found]`,
			cause:    PlatformMismatch,
			evidence: "no match for platform in manifest",
		},
		{
			name:     "registry unavailable, containerd 503 from the registry",
			msg:      `Failed to pull image "quay.io/org/app:1": rpc error: code = Unknown desc = failed to pull and unpack image "quay.io/org/app:1": failed to resolve reference "quay.io/org/app:1": unexpected status from HEAD request to https://quay.io/v2/org/app/manifests/1: 503 Service Unavailable`,
			cause:    RegistryUnavailable,
			evidence: "503 Service Unavailable",
			registry: "quay.io",
			runtime:  RuntimeContainerd,
		},
		{
			name:     "registry unavailable, containerd 1.4 httpReaderSeeker 500",
			msg:      `Failed to pull image "redis:7": rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/redis:7": failed to copy: httpReaderSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/library/redis/blobs/sha256:abc: 500 Internal Server Error`,
			cause:    RegistryUnavailable,
			evidence: "500 Internal Server Error",
		},
		{
			name:     "registry unavailable, Docker's received unexpected HTTP status 502",
			msg:      `Failed to pull image "quay.io/org/app:1": rpc error: code = Unknown desc = Error response from daemon: received unexpected HTTP status: 502 Bad Gateway`,
			cause:    RegistryUnavailable,
			evidence: "received unexpected HTTP status: 502 Bad Gateway",
			runtime:  RuntimeDocker,
		},
		{
			name:     "registry unavailable, 504 from the gateway is an answer, not a timeout",
			msg:      `Failed to pull image "r.example.com/app:1": failed to pull and unpack image "r.example.com/app:1": failed to resolve reference "r.example.com/app:1": pulling from host r.example.com failed with status code [manifests 1]: 504 Gateway Timeout`,
			cause:    RegistryUnavailable,
			evidence: "504 Gateway Timeout",
		},
		{
			name:   "registry unavailable, the CRI's class with no other words",
			reason: "RegistryUnavailable",
			msg:    `image pull failed for quay.io/org/app:1 because the registry is unavailable`,
			cause:  RegistryUnavailable,
			image:  "quay.io/org/app:1",
		},
		{
			name:     "not found or unauthorized, an anonymous token refused (403)",
			msg:      `Failed to pull image "registry.gitlab.com/g/p:1": failed to pull and unpack image "registry.gitlab.com/g/p:1": failed to resolve reference "registry.gitlab.com/g/p:1": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://gitlab.com/jwt/auth?scope=repository%3Ag%2Fp%3Apull&service=container_registry: 403 Forbidden`,
			cause:    NotFoundOrUnauthorized,
			evidence: "failed to fetch anonymous token",
		},
		{
			name:     "access denied, an oauth token (credentials presented) refused",
			msg:      `Failed to pull image "ghcr.io/org/app:1": failed to pull and unpack image "ghcr.io/org/app:1": failed to resolve reference "ghcr.io/org/app:1": failed to authorize: failed to fetch oauth token: unexpected status from GET request to https://ghcr.io/token?scope=repository%3Aorg%2Fapp%3Apull&service=ghcr.io: 403 Forbidden`,
			cause:    AccessDenied,
			evidence: "failed to fetch oauth token",
		},
		{
			name:     "not found or unauthorized, GHCR's bare 403 to a HEAD does not say credentials were presented",
			msg:      `Failed to pull image "ghcr.io/org/app:1": failed to pull and unpack image "ghcr.io/org/app:1": failed to resolve reference "ghcr.io/org/app:1": unexpected status from HEAD request to https://ghcr.io/v2/org/app/manifests/1: 403 Forbidden`,
			cause:    NotFoundOrUnauthorized,
			evidence: "403 Forbidden",
		},
		{
			name:    "not found or unauthorized, GHCR's bare denied",
			msg:     `Failed to pull image "ghcr.io/org/app:1": rpc error: code = Unknown desc = Error response from daemon: Head "https://ghcr.io/v2/org/app/manifests/1": denied: denied`,
			cause:   NotFoundOrUnauthorized,
			runtime: RuntimeDocker,
		},
		{
			name:     "not found or unauthorized, Artifact Registry's 'or it may not exist'",
			msg:      `Failed to pull image "europe-docker.pkg.dev/p/r/app:1": rpc error: code = Unknown desc = Error response from daemon: Head "https://europe-docker.pkg.dev/v2/p/r/app/manifests/1": denied: Permission "artifactregistry.repositories.downloadArtifacts" denied on resource "projects/p/locations/europe/repositories/r" (or it may not exist)`,
			cause:    NotFoundOrUnauthorized,
			evidence: "(or it may not exist)",
		},
		{
			name:     "unauthorized, Artifact Registry without credentials",
			msg:      `Failed to pull image "us-docker.pkg.dev/p/r/app:1": rpc error: code = Unknown desc = Error response from daemon: Head "https://us-docker.pkg.dev/v2/p/r/app/manifests/1": denied: Unauthenticated request. Unauthenticated requests do not have permission "artifactregistry.repositories.downloadArtifacts" on resource "projects/p/locations/us/repositories/r" (or it may not exist)`,
			cause:    Unauthorized,
			evidence: "Unauthenticated request",
		},
		{
			name:    "not found or unauthorized, CRI-O reading Docker Hub's denial",
			msg:     `Failed to pull image "acme/nope:1": rpc error: code = Unknown desc = reading manifest 1 in docker.io/acme/nope: requested access to the resource is denied`,
			cause:   NotFoundOrUnauthorized,
			runtime: RuntimeCRIO,
		},
		{
			name:     "image not found, GCR's MANIFEST_UNKNOWN 'Failed to fetch' is the same for a missing repository",
			msg:      `Failed to pull image "gcr.io/p/app:1": rpc error: code = Unknown desc = Error response from daemon: manifest for gcr.io/p/app:1 not found: manifest unknown: Failed to fetch "1" from request "/v2/p/app/manifests/1".`,
			cause:    ImageNotFound,
			evidence: "Failed to fetch",
		},
		{
			name:     "image not found, a bare 404 status line",
			msg:      `Failed to pull image "r.example.com/app:1": failed to pull and unpack image "r.example.com/app:1": failed to resolve reference "r.example.com/app:1": unexpected status from HEAD request to https://r.example.com/v2/app/manifests/1: 404 Not Found`,
			cause:    ImageNotFound,
			evidence: "404 Not Found",
		},
		{
			name:     "connection refused, Go's net/http client EOF (Docker)",
			msg:      `Failed to pull image "docker.io/acme/app:1": rpc error: code = Unknown desc = Error response from daemon: Get "https://registry-1.docker.io/v2/": EOF`,
			cause:    ConnectionRefused,
			evidence: "EOF",
		},
		{
			name:     "not found or unauthorized, 1.32+ back-off message keeping a Docker Hub refusal",
			reason:   "ImagePullBackOff",
			msg:      `Back-off pulling image "acme/private:1": ErrImagePull: failed to pull and unpack image "docker.io/acme/private:1": failed to resolve reference "docker.io/acme/private:1": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`,
			cause:    NotFoundOrUnauthorized,
			image:    "acme/private:1",
			registry: "docker.io",
		},
		{
			name:     "digest not found, the resolver's not found after a quoted reference (BuildKit, Docker's containerd store)",
			msg:      `failed to resolve reference "ghcr.io/org/app@sha256:` + strings.Repeat("c", 64) + `": not found`,
			cause:    DigestNotFound,
			evidence: ": not found",
		},
		{
			name:     "digest not found, Docker's no such manifest",
			msg:      `no such manifest: docker.io/org/app@sha256:` + strings.Repeat("d", 64),
			cause:    DigestNotFound,
			evidence: "no such manifest",
		},
		{
			name:    "platform mismatch, Docker on Windows names the OS version",
			msg:     `Error response from daemon: no matching manifest for windows/amd64 10.0.18362 in the manifest list entries`,
			cause:   PlatformMismatch,
			runtime: RuntimeDocker,
		},
		{
			name:    "FailedSync with escaped quotes",
			reason:  "FailedSync",
			msg:     `Error syncing pod, skipping: failed to "StartContainer" for "web" with ErrImagePull: "rpc error: code = 2 desc = Error response from daemon: {\"message\":\"manifest for acme/web:v2 not found\"}"`,
			cause:   TagNotFound,
			runtime: RuntimeDocker,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Classify(tt.reason, tt.msg)
			if c.Cause != tt.cause {
				t.Fatalf("cause = %s, want %s (evidence %q)", c.Cause, tt.cause, c.Evidence)
			}
			if !strings.Contains(tt.msg, c.Evidence) {
				t.Errorf("evidence %q is not a substring of the message", c.Evidence)
			}
			if tt.evidence != "" && !strings.Contains(c.Evidence, tt.evidence) {
				t.Errorf("evidence = %q, want it to contain %q", c.Evidence, tt.evidence)
			}
			if tt.image != "" && c.Image != tt.image {
				t.Errorf("image = %q, want %q", c.Image, tt.image)
			}
			if tt.registry != "" && c.Registry != tt.registry {
				t.Errorf("registry = %q, want %q", c.Registry, tt.registry)
			}
			if tt.runtime != RuntimeUnknown && c.Runtime != tt.runtime {
				t.Errorf("runtime = %q, want %q", c.Runtime, tt.runtime)
			}
			if c.Summary == "" || c.Remedy == "" {
				t.Errorf("summary %q / remedy %q must not be empty", c.Summary, c.Remedy)
			}
			if c.Image != "" && c.Cause != InvalidReference && !strings.Contains(c.Summary, c.Image) {
				t.Errorf("summary %q does not name the image %q", c.Summary, c.Image)
			}
		})
	}
}

// TestClassifyTexts checks what a person on call reads for the causes
// whose remedy must be concrete.
func TestClassifyTexts(t *testing.T) {
	ecr := Classify("Failed", `Failed to pull image "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1": rpc error: code = Unknown desc = Error response from daemon: denied: User: arn:aws:sts::123456789012:assumed-role/node/i-0 is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:123456789012:repository/app`)
	if ecr.Cause != AccessDenied {
		t.Fatalf("cause = %s", ecr.Cause)
	}
	for _, want := range []string{"ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "AmazonEC2ContainerRegistryReadOnly"} {
		if !strings.Contains(ecr.Remedy, want) {
			t.Errorf("ECR access-denied remedy lacks %q: %s", want, ecr.Remedy)
		}
	}
	to := Classify("", `Failed to pull image "quay.io/a/b:1": rpc error: code = Unknown desc = pinging container registry quay.io: Get "https://quay.io/v2/": dial tcp 1.2.3.4:443: i/o timeout`)
	for _, want := range []string{"NAT gateway", "internet gateway", "transit gateway", "proxy", "security groups"} {
		if !strings.Contains(to.Remedy, want) {
			t.Errorf("timeout remedy lacks %q: %s", want, to.Remedy)
		}
	}
	bo := Classify("BackOff", `Back-off pulling image "nginx:1"`)
	if !strings.Contains(bo.Summary, "events") {
		t.Errorf("bare back-off summary should point at the events: %s", bo.Summary)
	}
	inv := Classify("InvalidImageName", `Failed to apply default image tag "Nginx:1": couldn't parse image reference "Nginx:1": invalid reference format: repository name must be lowercase`)
	if !strings.Contains(inv.Summary, "upper-case") {
		t.Errorf("invalid-reference summary should say why: %s", inv.Summary)
	}
}

func TestTitlesAndDescribe(t *testing.T) {
	seen := map[string]Cause{}
	for _, c := range Causes() {
		title := c.Title()
		if title == "" {
			t.Errorf("%s has no title", c)
		}
		if other, dup := seen[title]; dup {
			t.Errorf("%s and %s share the title %q", c, other, title)
		}
		seen[title] = c
		s, r := Describe(c, "ghcr.io/acme/app:1", "ghcr.io")
		if s == "" || r == "" {
			t.Errorf("Describe(%s) is empty", c)
		}
		if !strings.Contains(s, "ghcr.io") {
			t.Errorf("Describe(%s) summary names neither image nor registry: %s", c, s)
		}
		if s0, _ := Describe(c, "", ""); strings.Contains(s0, `""`) {
			t.Errorf("Describe(%s) with nothing known prints empty quotes: %s", c, s0)
		}
	}
}

// TestClassifyLongInput: a pasted log far longer than any kubelet message is
// read at its head and tail, so it is fast and still decided.
func TestClassifyLongInput(t *testing.T) {
	noise := strings.Repeat("lookup a: [x, rpc error: ", 1<<16)
	msg := `Failed to pull image "nginx:1": [` + noise + "\n429 Too Many Requests\ntoomanyrequests: slow down"
	c := Classify("", msg)
	if c.Cause != RateLimited || !strings.Contains(msg, c.Evidence) || c.Image != "nginx:1" {
		t.Errorf("got %s %q %q", c.Cause, c.Evidence, c.Image)
	}
}

// TestDescribeClaimsOnlyWhatTheWordsCarry: the texts used where the words
// decided never state what only the registry could say (issue #12: "The
// repository exists … but the tag does not" for a bare containerd "not
// found" sent people looking for a tag when the repository was missing).
// Only DescribeSettled, used when the probe answered, says so.
func TestDescribeClaimsOnlyWhatTheWordsCarry(t *testing.T) {
	const img, reg = "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1", "public.ecr.aws"
	for _, c := range Causes() {
		s, r := Describe(c, img, reg)
		for _, claim := range []string{"repository exists", "the registry said so", "pullfix asked"} {
			if strings.Contains(s, claim) || strings.Contains(r, claim) {
				t.Errorf("%s from the words claims %q: %s", c, claim, s)
			}
		}
	}
	runbook := Classify("Failed", `Failed to pull image "`+img+`": rpc error: code = NotFound desc = failed to pull and unpack image "`+img+`": failed to resolve reference "`+img+`": `+img+`: not found`)
	if runbook.Cause != ImageNotFound || !strings.Contains(runbook.Summary, "do not say which") {
		t.Errorf("the runbook's message: %s %q, want image_not_found saying the words do not say which", runbook.Cause, runbook.Summary)
	}
	for c, want := range map[Cause]string{
		RepoNotFound:   "does not exist on public.ecr.aws: the registry said so",
		TagNotFound:    "The repository exists on public.ecr.aws but the tag",
		DigestNotFound: "the registry said so",
	} {
		if s, _ := DescribeSettled(c, img, reg); !strings.Contains(s, want) {
			t.Errorf("DescribeSettled(%s) = %q, want %q", c, s, want)
		}
	}
	never := Classify("ErrImageNeverPull", `Container image "app:dev" is not present with pull policy of Never`)
	for _, want := range []string{"not present on the node", "pulled with credentials", "the same for both"} {
		if !strings.Contains(never.Summary, want) {
			t.Errorf("never_pull summary lacks %q (KEP-2535: both readings): %s", want, never.Summary)
		}
	}
	unavailable, _ := Describe(RegistryUnavailable, img, reg)
	_, remedy := Describe(RegistryUnavailable, img, reg)
	for _, want := range []string{"status page", "mirror", "retr"} {
		if !strings.Contains(remedy, want) {
			t.Errorf("registry_unavailable remedy lacks %q: %s", want, remedy)
		}
	}
	if !strings.Contains(unavailable, "not the image") {
		t.Errorf("registry_unavailable summary: %s", unavailable)
	}
}
