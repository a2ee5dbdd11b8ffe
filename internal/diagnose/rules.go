package diagnose

import "regexp"

// Two internal verdicts that Classify resolves against the reference before
// they leave the package: the registry said the manifest is missing (tag or
// digest, decided by the reference), or the runtime said only "not found"
// (containerd flattens NAME_UNKNOWN and MANIFEST_UNKNOWN into one error).
const (
	manifestMissing Cause = "manifest_missing"
	genericNotFound Cause = "generic_not_found"
	// forbidden: a 403 or "denied" that does not say whether credentials
	// were presented.
	forbidden Cause = "forbidden"
)

// rule decides a cause when its pattern occurs in an error. Patterns are
// written against how each layer builds its strings, not against sample
// messages:
//   - Go's net and crypto packages ("dial tcp …: i/o timeout", "lookup H on
//     S: no such host", "x509: …", "http: server gave HTTP response to HTTPS
//     client");
//   - the distribution spec's error codes as registries print them, upper
//     case (MANIFEST_UNKNOWN) or as containerd/Docker lower-case them
//     ("manifest unknown: …", "denied: …", "toomanyrequests: …");
//   - HTTP status lines ("401 Unauthorized", "403 Forbidden");
//   - the runtimes' own wrappers (containerd "failed to resolve reference",
//     CRI-O "reading manifest T in R", Docker "pull access denied for R");
//   - the kubelet's reasons (InvalidImageName, ErrImageNeverPull).
//
// A pattern starts at the words a person should read, so the match start is
// where the evidence starts.
type rule struct {
	cause Cause
	re    *regexp.Regexp
}

// rules are in precedence order: within one error the first rule that
// matches decides. The order encodes which words are the root cause when
// several appear together:
//   - the kubelet's own verdicts (never-pull, invalid name) first: no pull
//     happened;
//   - platform and unpack failures next: the registry answered fine;
//   - rate limit and expired token before the generic 401/403 they arrive in;
//   - transport failures (HTTP vs HTTPS before TLS, DNS before timeout,
//     since a timed-out lookup is a DNS failure) before any registry answer,
//     as they mean there was none; then a 5xx answer, which says only that
//     the registry is failing;
//   - the registry's ambiguous "does not exist or may require
//     authorization" before its components ("denied", "not found"), and an
//     anonymous token refusal with it: the registry declines to say;
//   - specific not-found codes before denial and 401; a 404 status line
//     and containerd's bare "…: not found" say only that something is
//     missing (image_not_found);
//   - a bare 403 / "denied" is settled by Classify: access denied only
//     where credentials were shown to be presented;
//   - the CRI's RegistryUnavailable class and gRPC codes last.
var rules = []rule{
	{NeverPull, re(`is not present with pull policy of Never|ErrImageNeverPull`)},

	{InvalidReference, re(`InvalidImageName|Failed to apply default image tag|couldn't parse image (?:reference|name)|invalid reference format|repository name (?:\(\S+\) )?must be lowercase|(?:repository|image) name must be canonical|cannot specify 64-byte hexadecimal strings|(?i:invalid image name)|(?:parsing|parse) (?:image )?reference .{0,200}?invalid|short-name \S+ did not resolve to an alias|short-name resolution enforced`)},

	{PlatformMismatch, re(`no match for platform in manifest|no matching manifest for \S+(?: [0-9.]+)? in the manifest list entries|no image found in (?:manifest list|image index) for architecture|does not match the specified platform|image operating system \S+ cannot be used on this platform|choosing (?:an )?image (?:instance|from manifest list)[^\n]*?no image found`)},

	{UnpackFailed, re(`(?i:no space left on device)|(?i:disk quota exceeded)|failed to extract layer|failed to unpack image on snapshotter|failed to unpack|apply layer error|failed to register layer|[Ee]rror processing tar file|failed to prepare extraction snapshot|failed to commit snapshot|(?i:storing blob to file)[^\n]*?(?i:no space|quota)`)},

	{RateLimited, re(`(?i:toomanyrequests)|429 Too Many Requests|(?i:too many requests)|(?i:pull rate limit)|(?i:rate limit(?:ed| exceeded))|(?i:status(?: code)?:? 429)\b`)},

	{CredentialsExpired, re(`(?i:(?:authorization |auth |access |security |bearer )?token (?:has |is )?expired)|(?i:token included in the request is expired)|(?i:expired token)|ExpiredToken|(?i:credentials? (?:have|has) expired)|(?i:password has expired)`)},

	{HTTPVsHTTPS, re(`server gave HTTP response to HTTPS client|first record does not look like a TLS handshake|(?i:sent an HTTP request to an HTTPS server)|(?i:plain HTTP request was sent to HTTPS port)|tls: oversized record received`)},

	{TLSError, re(`(?:tls: failed to verify certificate: )?x509: [^\n]*|tls: failed to verify certificate|certificate signed by unknown authority|certificate has expired or is not yet valid|certificate is (?:not )?valid for|remote error: tls: [^\n]*|tls: (?:handshake failure|bad certificate|unknown certificate authority|protocol version not supported)|(?i:certificate verify failed)`)},

	{DNSFailure, re(`(?:dial tcp: )?lookup [^\s:]+(?::\d+)?(?: on \S+)?: [^\n]*|no such host|server misbehaving|Temporary failure in name resolution|Name or service not known|[Cc]ould not resolve host|NXDOMAIN`)},

	{NetworkTimeout, re(`(?:dial tcp \S+: )?i/o timeout|(?:net/http: )?TLS handshake timeout|(?:net/http: )?request canceled while waiting for connection[^\n]*|(?:net/http: request canceled )?\(?Client\.Timeout exceeded[^\n]*|(?:net/http: )?timeout awaiting response headers|context deadline exceeded|(?:connect: )?connection timed out|operation timed out|(?:connect: )?no route to host|(?:connect: )?network is unreachable`)},

	// Go's net/http client closing on a dropped connection ("Get URL:
	// EOF", "unexpected EOF", "http2: server sent GOAWAY") is a refused
	// or reset connection: no answer came back.
	{ConnectionRefused, re(`(?:dial tcp \S+: )?(?:connect: )?connection refused|(?:read tcp \S+: )?(?:read: )?connection reset by peer|connection reset|(?:(?:Get|Head|Post) \\?"?https?://\S+?\\?"?: )(?:unexpected )?EOF\b|http2: server sent GOAWAY[^\n]*|\bunexpected EOF\b`)},

	// A registry (or its load balancer) answering 5xx is failing; the
	// image may be fine. The statuses are HTTP's reason phrases as Go's
	// net/http prints them, containerd's "unexpected status" lines and
	// Docker's "received unexpected HTTP status".
	{RegistryUnavailable, re(status + `50[0-4] (?:Internal Server Error|Bad Gateway|Service Unavailable|Gateway Time-?out)|(?i:received unexpected HTTP status: 5\d\d[^\n]*)|(?i:status(?: code)?:? 50[0-4])\b|(?i:service unavailable)|(?i:bad gateway)|(?i:gateway time-?out)|(?i:internal server error)`)},

	// Artifact Registry's answer to a request without credentials says so.
	{Unauthorized, re(`Unauthenticated request[^\n]*`)},

	// Artifact Registry adds "(or it may not exist)" to a permission
	// denial: the registry declines to say which.
	{NotFoundOrUnauthorized, re(`Permission \\?"[^"\\]*\\?" denied on resource \\?"[^"\\]*\\?" \(or it may not exist\)[^\n]*`)},

	// An IAM denial names the missing permission even inside Docker's
	// ambiguous "pull access denied … may require 'docker login'" wrapper.
	{AccessDenied, re(`not authorized to perform[^\n]*|denied on resource[^\n]*`)},

	// A token service refusing an anonymous request: the repository is
	// private, or missing (the registry declines to say).
	{NotFoundOrUnauthorized, re(`failed to fetch anonymous token: [^\n]*?\b40[13] (?:Unauthorized|Forbidden)`)},

	{NotFoundOrUnauthorized, re(`pull access denied[^\n]*|repository \S+ not found: does not exist or no pull access|does not exist or no pull access|(?:repository )?does not exist or may require[^\n]*|insufficient_scope[^\n]*|access to the requested resource is not authorized|(?i:requested access to the resource is denied)[^\n]*|Error: image \S+ not found`)},

	{RepoNotFound, re(`NAME_UNKNOWN[^\n]*|name unknown[^\n]*|repository name not known to registry|The repository with name '[^']*' does not exist[^\n]*|[Rr]epository (?:\\?"[^"\\]*\\?"|\S+) (?:was )?not found|[Rr]epository \S+ does not exist|project \S+ not found`)},

	// Google Container Registry answers MANIFEST_UNKNOWN "Failed to fetch
	// …" for a missing repository and a missing tag alike.
	{genericNotFound, re(`manifest unknown: Failed to fetch[^\n]*`)},

	{manifestMissing, re(`MANIFEST_UNKNOWN[^\n]*|manifest for\s+\S+ not found[^\n]*|(?:Error )?reading manifest \S+ in \S+: manifest unknown[^\n]*|manifest unknown[^\n]*|Tag \S+ not found in repository \S+|Requested image not found|content at \S+ not found|could not fetch content descriptor sha(?:256|512):[^\n]*?not found|tag \S+ not found|manifest \S+ not found|no such manifest: \S+`)},

	// A 404 status line does not say whether the repository or the
	// manifest was missing.
	{genericNotFound, re(`\S+: 404 Not Found|404 Not Found|status code:? 404`)},

	// The credentials were presented (an oauth token request carries
	// them); the registry refused them for this image.
	{AccessDenied, re(`failed to fetch oauth token: [^\n]*?\b403 Forbidden`)},

	// A bare 403 or "denied" does not say whether credentials were
	// presented: Classify settles it against the registry and the
	// kubelet's multi-credential list.
	{forbidden, re(status + `403 Forbidden|(?i:status(?: code)?:? 403)\b|DENIED[^\n]*|denied: [^\n]*|Permission \\?"[^"\\]*\\?" denied[^\n]*|(?i:access denied)[^\n]*|AccessDenied[^\n]*|(?i:forbidden)[^\n]*|: denied\b`)},

	{Unauthorized, re(`no basic auth credentials|` + status + `401 Unauthorized|(?i:status(?: code)?:? 401)\b|UNAUTHORIZED[^\n]*|unauthorized: [^\n]*|(?i:authentication required)[^\n]*|(?i:incorrect username or password)|(?i:invalid username/password)[^\n]*|(?i:username and password required)|Unauthorized|unauthorized|(?i:not authorized)`)},

	{genericNotFound, re(`[^\s"\\]+: not found|"[^"\n]+": not found`)},

	// The CRI's RegistryUnavailable class (CRI-O), whatever words follow
	// that matched nothing above.
	{RegistryUnavailable, re(`RegistryUnavailable[^\n]*|because the registry is unavailable[^\n]*`)},

	// A gRPC code alone is the runtime's summary of an error whose words
	// matched nothing above.
	{NetworkTimeout, re(`code = DeadlineExceeded|rpc error: code = 4 desc`)},
	{genericNotFound, re(`code = NotFound|rpc error: code = 5 desc`)},
}

// status starts the evidence of an HTTP status at the runtime's words
// around it ("failed to fetch oauth token: unexpected status from GET
// request to …: 403 Forbidden") rather than in the middle of a URL.
const status = `(?:(?:failed to (?:authorize|fetch (?:anonymous|oauth) token): )*(?:unexpected status[^\n]*?|pulling from host \S+ failed with status code[^\n]*?|Status \d+ trying to pull[^\n]*?))?`

func re(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// informativeness ranks causes across the elements of a multi-credential
// list: the kubelet tried each credential in turn, and the element that
// tells most about the image decides. A credential that reached the image
// ("not found", "denied") says more than one that was refused at the door
// (401), which says more than the ambiguous answer of an anonymous pull.
func informativeness(c Cause) int {
	switch c {
	case RepoNotFound, TagNotFound, DigestNotFound, ImageNotFound, PlatformMismatch:
		return 10
	case InvalidReference, NeverPull, UnpackFailed:
		return 9
	case AccessDenied, CredentialsExpired:
		return 8
	case RateLimited:
		return 7
	case HTTPVsHTTPS, TLSError:
		return 6
	case DNSFailure:
		return 5
	case ConnectionRefused, NetworkTimeout, RegistryUnavailable:
		return 4
	case NotFoundOrUnauthorized:
		return 3
	case Unauthorized:
		return 2
	}
	return 0
}
