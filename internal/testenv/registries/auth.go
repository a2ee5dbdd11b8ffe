package registries

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// BearerAuth is a Docker token service in front of the registry
// (distribution's token auth spec): GET /v2/ answers 401 with
// `WWW-Authenticate: Bearer realm=…,service=…`; GET /token checks optional
// Basic credentials and grants pull scopes; resources answer 401
// insufficient_scope without a token that grants their repository.
type BearerAuth struct {
	// Service is the service name in the challenge; default "registry.test".
	Service string
	// Users are the accepted username → password pairs; a wrong password
	// is refused at the token endpoint (401 "incorrect username or password").
	Users map[string]string
	// Private repositories (exact or "prefix/*") are granted only to Users;
	// others are public (anonymous tokens may pull them).
	Private []string
	// HubLike makes the token service grant nothing for repositories that
	// do not exist, like Docker Hub: the registry then answers 401 for
	// missing and private repositories alike, even to valid users.
	// Otherwise (distribution, ECR Public) missing repositories get a
	// token and a plain NAME_UNKNOWN.
	HubLike bool
	// NoCatalog refuses the registry:catalog:* scope (Docker Hub never grants it).
	NoCatalog bool
	// RequireLogin makes the token endpoint refuse anonymous requests
	// (401), like a private Harbor or GitLab registry.
	RequireLogin bool
}

// HubLike is a Docker-Hub-like bearer setup: anonymous tokens for public
// repositories, 401 for missing or private ones, no catalog.
func HubLike(users map[string]string, private ...string) BearerAuth {
	return BearerAuth{Service: "registry.docker.io", Users: users, Private: private, HubLike: true, NoCatalog: true}
}

type grant struct {
	user    string
	repos   map[string]bool
	catalog bool
}

type bearer struct {
	r    *Registry
	cfg  BearerAuth
	next http.Handler

	mu     sync.Mutex
	tokens map[string]grant
}

func newBearer(r *Registry, cfg BearerAuth, next http.Handler) http.Handler {
	if cfg.Service == "" {
		cfg.Service = "registry.test"
	}
	return &bearer{r: r, cfg: cfg, next: next, tokens: map[string]grant{}}
}

func (b *bearer) realm() string { return b.r.URL + "/token" }

func (b *bearer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/token" {
		b.token(w, req)
		return
	}
	g, hasToken := b.lookup(req)
	switch {
	case req.URL.Path == "/v2/" || req.URL.Path == "/v2":
		if !hasToken {
			b.challenge(w, "", "")
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", nil)
			return
		}
	case req.URL.Path == "/v2/_catalog":
		if !g.catalog {
			b.challenge(w, "registry:catalog:*", "insufficient_scope")
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required",
				[]map[string]string{{"Type": "registry", "Class": "", "Name": "catalog", "Action": "*"}})
			return
		}
	default:
		repo, ok := repoOf(req.URL.Path)
		if ok && !g.repos[repo] {
			b.challenge(w, "repository:"+repo+":pull", "insufficient_scope")
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required",
				[]map[string]string{{"Type": "repository", "Class": "", "Name": repo, "Action": "pull"}})
			return
		}
	}
	b.next.ServeHTTP(w, req)
}

func (b *bearer) challenge(w http.ResponseWriter, scope, errCode string) {
	v := fmt.Sprintf(`Bearer realm=%q,service=%q`, b.realm(), b.cfg.Service)
	if scope != "" {
		v += fmt.Sprintf(`,scope=%q`, scope)
	}
	if errCode != "" {
		v += fmt.Sprintf(`,error=%q`, errCode)
	}
	w.Header().Set("WWW-Authenticate", v)
}

func (b *bearer) lookup(req *http.Request) (grant, bool) {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return grant{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.tokens[tok]
	return g, ok
}

func (b *bearer) token(w http.ResponseWriter, req *http.Request) {
	user := ""
	if u, p, ok := req.BasicAuth(); ok {
		if want, known := b.cfg.Users[u]; !known || want != p {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"details":"incorrect username or password"}`)
			return
		}
		user = u
	}
	if user == "" && b.cfg.RequireLogin {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"details":"authentication required"}`)
		return
	}
	g := grant{user: user, repos: map[string]bool{}}
	for _, scopes := range req.URL.Query()["scope"] {
		for s := range strings.FieldsSeq(scopes) {
			parts := strings.Split(s, ":")
			if len(parts) < 3 {
				continue
			}
			typ, name := parts[0], strings.Join(parts[1:len(parts)-1], ":")
			switch {
			case typ == "registry" && name == "catalog":
				g.catalog = !b.cfg.NoCatalog && user != ""
			case typ == "repository":
				if b.allowed(user, name) {
					g.repos[name] = true
				}
			}
		}
	}
	tok := randomHex()
	b.mu.Lock()
	b.tokens[tok] = g
	b.mu.Unlock()
	writeJSON(w, map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
}

func (b *bearer) allowed(user, repo string) bool {
	if b.cfg.HubLike && !b.r.exists(repo) {
		return false
	}
	if matchRepo(b.cfg.Private, repo) {
		return user != ""
	}
	return true
}

// BasicAuth is ECR-like: /v2/ answers 401 with a Basic challenge; requests
// without valid credentials get 401 DENIED "Not Authorized"; a user
// without permission on a repository gets 403 DENIED with the IAM message;
// an expired user gets 403 "Your authorization token has expired".
type BasicAuth struct {
	Users map[string]BasicUser
	// Account and Region shape the IAM messages; defaults 123456789012, us-west-2.
	Account, Region string
}

// BasicUser is one identity of a BasicAuth registry.
type BasicUser struct {
	Password string
	// Repos the user may pull (exact or "prefix/*"); nil means all.
	Repos []string
	// Expired makes every request answer "token has expired".
	Expired bool
}

type basicAuth struct {
	r    *Registry
	cfg  BasicAuth
	next http.Handler
}

func newBasic(r *Registry, cfg BasicAuth, next http.Handler) http.Handler {
	if cfg.Account == "" {
		cfg.Account = "123456789012"
	}
	if cfg.Region == "" {
		cfg.Region = "us-west-2"
	}
	return &basicAuth{r: r, cfg: cfg, next: next}
}

func (a *basicAuth) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	u, p, ok := req.BasicAuth()
	user, known := a.cfg.Users[u]
	if !ok || !known || user.Password != p {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q,service="ecr.amazonaws.com"`, a.r.URL+"/"))
		writeError(w, http.StatusUnauthorized, "DENIED", "Not Authorized", nil)
		return
	}
	if user.Expired {
		writeError(w, http.StatusForbidden, "DENIED", "Your authorization token has expired. Reauthenticate and try again.", nil)
		return
	}
	if repo, ok := repoOf(req.URL.Path); ok && user.Repos != nil && !matchRepo(user.Repos, repo) {
		writeError(w, http.StatusForbidden, "DENIED", fmt.Sprintf(
			"User: arn:aws:sts::%s:assumed-role/eks-node-role/i-0abc is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:%s:%s:repository/%s because no identity-based policy allows the ecr:BatchGetImage action",
			a.cfg.Account, a.cfg.Region, a.cfg.Account, repo), nil)
		return
	}
	a.next.ServeHTTP(w, req)
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	json.NewEncoder(w).Encode(v)
}
