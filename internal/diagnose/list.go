package diagnose

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Listings: tags and catalogs, which tell a missing repository from a
// missing tag and feed the nearest-name candidates.

// listResult is a cached tags or catalog listing.
type listResult struct {
	names []string
	err   error
	steps []ProbeStep
}

// Tags lists the tags of repository (as written, e.g.
// "public.ecr.aws/aws-containers/ui") through its mirror, one page of up to
// DefaultPageSize tags: enough to find a near miss, bounded in cost.
func (p *Prober) Tags(ctx context.Context, repository string, kc authn.Keychain) ([]string, error) {
	names, _, err := p.tags(ctx, repository, kc)
	return names, err
}

// tags is Tags with the requests it made (none when cached).
func (p *Prober) tags(ctx context.Context, repository string, kc authn.Keychain) ([]string, []ProbeStep, error) {
	repo, err := name.NewRepository(repository)
	if err != nil {
		return nil, nil, err
	}
	fetch, err := p.rebaseRepo(repo)
	if err != nil {
		return nil, nil, err
	}
	cred, err := p.resolve(ctx, kc, repo)
	if err != nil {
		return nil, nil, err
	}
	return p.listAs(ctx, kc, repo, cred, func(cred credential) (listResult, bool, error) {
		return p.tagsAs(ctx, repo, fetch, cred)
	})
}

// listAs runs a listing with cred and, when the registry refuses it, with
// each other credential a MultiKeychain offers (as probe does).
func (p *Prober) listAs(ctx context.Context, kc authn.Keychain, res authn.Resource, cred credential,
	list func(credential) (listResult, bool, error)) ([]string, []ProbeStep, error) {
	lr, hit, err := list(cred)
	if err != nil {
		return nil, nil, err
	}
	if hit {
		lr.steps = nil
	}
	if lr.err == nil || !authRefused(classifyError(lr.err, errorContext{anonymous: cred.anonymous}).Cause) {
		return lr.names, lr.steps, lr.err
	}
	steps := lr.steps
	p.otherCredentials(ctx, kc, res, cred, func(c credential) bool {
		alt, hit, err := list(c)
		if err != nil {
			return false
		}
		if !hit {
			steps = slices.Concat(steps, alt.steps)
		}
		if alt.err == nil {
			lr = alt
			return true
		}
		return false
	})
	return lr.names, steps, lr.err
}

// tagsAs is one tags listing with one credential, through the cache.
func (p *Prober) tagsAs(ctx context.Context, repo, fetch name.Repository, cred credential) (listResult, bool, error) {
	return p.listWith(ctx, "tags|"+repo.String(), fetch.RegistryStr(), cred, func(ctx context.Context, puller *remote.Puller) ([]string, error) {
		lister, err := puller.Lister(ctx, fetch)
		if err != nil {
			return nil, err
		}
		page, err := lister.Next(ctx)
		if err != nil {
			return nil, err
		}
		return page.Tags, nil
	})
}

// listWith runs one listing (tags or catalog) with one credential under a
// per-host slot and the probe timeout, through the listing cache.
func (p *Prober) listWith(ctx context.Context, key, host string, cred credential, list func(context.Context, *remote.Puller) ([]string, error)) (listResult, bool, error) {
	return p.lists.do(ctx, key+"|"+cred.identity, func() (listResult, bool) {
		var names []string
		steps, err := p.withSlot(ctx, host, func(ctx context.Context) error {
			puller, err := remote.NewPuller(p.remoteOptions(ctx, cred.auth, Platform{})...)
			if err != nil {
				return err
			}
			names, err = list(ctx, puller)
			return err
		})
		return listResult{names: names, err: err, steps: steps}, ctx.Err() == nil
	})
}

// Catalog lists repository names of registry (as written, e.g.
// "public.ecr.aws") through its mirror, at most WithCatalogPages pages.
// Many registries do not offer /v2/_catalog (Docker Hub, GHCR) or only to
// admins (Harbor): any error means "unavailable", never a diagnosis.
func (p *Prober) Catalog(ctx context.Context, registry string, kc authn.Keychain) ([]string, error) {
	names, _, err := p.catalog(ctx, registry, kc)
	return names, err
}

// catalog is Catalog with the requests it made (none when cached).
func (p *Prober) catalog(ctx context.Context, registry string, kc authn.Keychain) ([]string, []ProbeStep, error) {
	if p.o.catalogPages == 0 {
		return nil, nil, errors.New("catalog disabled")
	}
	reg, err := name.NewRegistry(registry)
	if err != nil {
		return nil, nil, err
	}
	fetchRepo, err := p.rebaseRepo(reg.Repo("x"))
	if err != nil {
		return nil, nil, err
	}
	fetch := fetchRepo.Registry
	if _, mirrored := p.o.mirrors.Lookup(reg.RegistryStr()); !mirrored && noCatalog[reg.RegistryStr()] {
		return nil, nil, fmt.Errorf("%s does not offer /v2/_catalog", reg.RegistryStr())
	}
	cred, err := p.resolve(ctx, kc, reg)
	if err != nil {
		return nil, nil, err
	}
	return p.listAs(ctx, kc, reg, cred, func(cred credential) (listResult, bool, error) {
		return p.catalogAs(ctx, reg, fetch, cred)
	})
}

// catalogAs is one catalog listing with one credential, through the cache.
func (p *Prober) catalogAs(ctx context.Context, reg, fetch name.Registry, cred credential) (listResult, bool, error) {
	return p.listWith(ctx, "catalog|"+reg.String(), fetch.RegistryStr(), cred, func(ctx context.Context, puller *remote.Puller) ([]string, error) {
		cat, err := puller.Catalogger(ctx, fetch)
		if err != nil {
			return nil, err
		}
		var names []string
		for i := 0; i < p.o.catalogPages && cat.HasNext(); i++ {
			page, err := cat.Next(ctx)
			if err != nil {
				return names, err
			}
			names = append(names, page.Repos...)
		}
		return names, nil
	})
}

// noCatalog lists registries known never to grant registry:catalog:*
// (facts §5): asking would cost a token exchange and two refusals.
var noCatalog = map[string]bool{
	name.DefaultRegistry: true,
	"ghcr.io":            true,
}
