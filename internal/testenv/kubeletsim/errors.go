package kubeletsim

import (
	"fmt"
	"hash/fnv"
	"net"
	"strings"
)

// runtimeError is what the CRI returns for a failed pull, as the kubelet
// prints it. Kubelet 1.28+ (kubernetes/kubernetes#117612) strips only the
// `rpc error: code = Unknown desc = ` prefix; other gRPC codes stay, e.g.
// `rpc error: code = NotFound desc = …` (facts/kubelet.md).
type runtimeError struct {
	code string // gRPC code name; "" is Unknown (stripped)
	desc string // containerd's error text
}

func (e *runtimeError) Error() string {
	if e.code == "" {
		return e.desc
	}
	return "rpc error: code = " + e.code + " desc = " + e.desc
}

// The containerd 2.x texts. Each template names a real message it was taken
// from. "full" is containerd's normalised reference (docker.io/library/… for
// short names; repo@digest when a digest is given).

// errNotFound: the manifest HEAD answered 404.
// Source: seeds/000 runbook (public.ecr.aws, `rpc error: code = NotFound desc =
// … failed to resolve reference "X": X: not found`);
// https://github.com/aquasecurity/trivy-operator/issues/2336;
// https://github.com/artifacthub/hub/issues/4548.
func errNotFound(r imageRef) error {
	return &runtimeError{code: "NotFound", desc: fmt.Sprintf(
		"failed to pull and unpack image %q: failed to resolve reference %q: %s: not found", r.full, r.full, r.full)}
}

// errInsufficientScope: a 401 whose Bearer challenge carries an error
// parameter after containerd already presented a token (Docker Hub's answer
// for a missing or private repository). containerd's authorizer says
// "server message: <error>: authorization failed" and its resolver prefixes
// "pull access denied, …".
// Source: https://github.com/thekubefleet/kubefleet/issues/6 (kubelet 1.28+,
// no rpc prefix); https://github.com/kubesphere/kubesphere/issues/6543.
func errInsufficientScope(r imageRef, serverErr string) error {
	return &runtimeError{desc: fmt.Sprintf(
		"failed to pull and unpack image %q: failed to resolve reference %q: pull access denied, repository does not exist or may require authorization: server message: %s: authorization failed",
		r.full, r.full, serverErr)}
}

// errResolveStatus: any other 4xx/5xx on the manifest HEAD (401 without an
// error parameter, as ECR's Basic challenge; 403; 429; 5xx). A HEAD response
// has no body, so nothing follows the status.
// Source: https://github.com/aws/eks-charts/issues/1044 (401 Unauthorized, ECR);
// https://github.com/kubernetes/kubernetes/issues/126366 (429 Too Many
// Requests, registry.k8s.io); containerd core/remotes/errors/errors.go
// (`unexpected status from %s request to %s: %s`).
func errResolveStatus(r imageRef, status string) error {
	return &runtimeError{desc: fmt.Sprintf(
		"failed to pull and unpack image %q: failed to resolve reference %q: unexpected status from HEAD request to %s: %s",
		r.full, r.full, r.manifestURL(r.identifier()), status)}
}

// errResolveStatus16 is errResolveStatus in containerd 1.6's words: its
// resolver names the host and the request's path elements
// ("pulling from host %s failed with status code %v: %v", paths printed as
// a Go slice: [manifests TAG]).
// Source: the real node of internal/testenv/node (Debian 12's containerd
// 1.6.20, kubelet v1.37.2): `failed to pull and unpack image "X": failed to
// resolve reference "X": pulling from host
// 123456789012.dkr.ecr.us-west-2.amazonaws.com failed with status code
// [manifests 1.2.1]: 401 Unauthorized`, no gRPC code.
func errResolveStatus16(r imageRef, status string) error {
	return &runtimeError{desc: fmt.Sprintf(
		"failed to pull and unpack image %q: failed to resolve reference %q: pulling from host %s failed with status code [manifests %s]: %s",
		r.full, r.full, r.requestHost(), r.identifier(), status)}
}

// errTokenStatus: the token endpoint refused (anonymous or with
// credentials).
// Source: https://github.com/rossoctl/rossoctl/issues/116 (`failed to
// authorize: failed to fetch oauth token: unexpected status from GET request
// to https://ghcr.io/token?…: 403 Forbidden`); the anonymous variant is
// containerd core/remotes/docker/authorizer.go ("failed to fetch anonymous
// token").
func errTokenStatus(r imageRef, withCreds bool, tokenURL, status string) error {
	kind := "anonymous"
	if withCreds {
		kind = "oauth"
	}
	return &runtimeError{desc: fmt.Sprintf(
		"failed to pull and unpack image %q: failed to resolve reference %q: failed to authorize: failed to fetch %s token: unexpected status from GET request to %s: %s",
		r.full, r.full, kind, tokenURL, status)}
}

// errFetchStatus: the HEAD resolved but the manifest GET by digest failed.
// containerd 2.x puts the registry's error body on the next line(s).
// Source: https://github.com/jenkinsci/helm-charts/issues/1586
// (`failed to copy: httpReadSeeker: failed open: unexpected status from GET
// request to https://registry-1.docker.io/v2/…/manifests/sha256:…: 429 Too
// Many Requests\ntoomanyrequests: You have reached …`).
func errFetchStatus(r imageRef, digest, status string, body []string) error {
	msg := fmt.Sprintf("failed to pull and unpack image %q: failed to copy: httpReadSeeker: failed open: unexpected status from GET request to %s: %s",
		r.full, r.manifestURL(digest), status)
	for _, b := range body {
		msg += "\n" + b
	}
	return &runtimeError{desc: msg}
}

// errRequest: the HEAD never got an answer. detail is Go's net/http error
// after the URL; timeouts carry gRPC DeadlineExceeded.
// Sources: timeout https://github.com/ciiiii/cloudflare-docker-proxy/issues/85
// (`rpc error: code = DeadlineExceeded desc = … failed to do request: Head
// "https://…/manifests/v1.11.2": dial tcp 74.125.203.82:443: i/o timeout`);
// DNS https://github.com/k3s-io/k3s/issues/10613 (`dial tcp: lookup
// private-registry.com: no such host`) with Go's resolver naming its server
// as in https://github.com/docker/for-win/issues/6241 (`lookup
// registry-1.docker.io on 192.168.65.1:53: no such host`); TLS
// https://github.com/cnoe-io/idpbuilder/issues/520 (`tls: failed to verify
// certificate: x509: certificate signed by unknown authority`); plain HTTP
// https://github.com/tilt-dev/tilt/issues/6498 (`http: server gave HTTP
// response to HTTPS client`); refused https://github.com/dsyer/kubernetes-intro/issues/1
// (`dial tcp 127.0.0.1:5000: connect: connection refused`, Docker wording of
// the same Go error).
func errRequest(r imageRef, code, detail string) error {
	return &runtimeError{code: code, desc: fmt.Sprintf(
		"failed to pull and unpack image %q: failed to resolve reference %q: failed to do request: Head %q: %s",
		r.full, r.full, r.manifestURL(r.identifier()), detail)}
}

// errPlatform: no manifest in the index for the node's platform.
// Source: https://github.com/FoundationDB/fdb-kubernetes-operator/issues/2294;
// https://github.com/codefactoryhu/manifest/issues/11.
func errPlatform(r imageRef) error {
	return &runtimeError{code: "NotFound", desc: fmt.Sprintf(
		"failed to pull and unpack image %q: no match for platform in manifest: not found", r.full)}
}

// nodeDNSServer is the node's resolver in DNS messages: the VPC resolver at
// the base of an AWS VPC CIDR plus two, as on EKS nodes.
const nodeDNSServer = "10.0.0.2:53"

// dialAddr is the address a node would have dialled for host: a stable
// address from TEST-NET-3 (203.0.113.0/24, RFC 5737), port 443 unless the
// host names one. Real texts carry the registry's public address here.
func dialAddr(host string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = host, "443"
	}
	f := fnv.New32a()
	f.Write([]byte(h))
	return fmt.Sprintf("203.0.113.%d:%s", 1+f.Sum32()%254, port)
}

// hostOnly strips a port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// timeoutDetail, dnsDetail and refusedDetail are Go's net error texts for
// the original host.
func timeoutDetail(host string) string { return "dial tcp " + dialAddr(host) + ": i/o timeout" }
func dnsDetail(host string) string {
	return "dial tcp: lookup " + hostOnly(host) + " on " + nodeDNSServer + ": no such host"
}
func refusedDetail(host string) string {
	return "dial tcp " + dialAddr(host) + ": connect: connection refused"
}

// errorBodyLines renders a registry error body as containerd 2.x does after
// the status: "<code in lower case>: <message>" per error.
func errorBodyLines(codes, messages []string) []string {
	var out []string
	for i := range codes {
		out = append(out, strings.ToLower(codes[i])+": "+messages[i])
	}
	return out
}
