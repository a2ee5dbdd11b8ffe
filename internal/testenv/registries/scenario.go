package registries

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The runbook's images (seeds/000): the Deployment ui-new points at the
// misspelt repository RetailingUI, which does not exist; RetailUI does.
const (
	// PublicECR is the registry the runbook's references name; map it to a
	// test registry with the probe's mirrors ("public.ecr.aws=" + Host).
	PublicECR = "public.ecr.aws"

	RetailUI       = "aws-containers/retail-store-sample-ui"
	RetailingUI    = "aws-containers/retailing-store-sample-ui" // never pushed
	RetailCatalog  = "aws-containers/retail-store-sample-catalog"
	RetailCart     = "aws-containers/retail-store-sample-cart"
	RetailOrders   = "aws-containers/retail-store-sample-orders"
	RetailCheckout = "aws-containers/retail-store-sample-checkout"
	// RetailAssetsAMD64 exists only as a single linux/amd64 image.
	RetailAssetsAMD64 = "aws-containers/retail-store-sample-assets"
	// RetailUtilsAMD64Index is an index with linux/amd64 only (no arm64).
	RetailUtilsAMD64Index = "aws-containers/retail-store-sample-utils"

	RunbookTag = "1.2.1"
)

// MultiArch is the platform set of the runbook's images.
var MultiArch = []string{"linux/amd64", "linux/arm64"}

// Runbook holds the digests SeedRunbook pushed, by "repo:tag".
type Runbook map[string]v1.Hash

// SeedRunbook pushes the runbook's images: retail-store-sample-ui 1.2.1
// (the fix), its older tags, the sibling services, and two images that
// lack linux/arm64 (for platform checks). retailing-store-sample-ui is
// deliberately absent.
func SeedRunbook(t testing.TB, r *Registry) Runbook {
	t.Helper()
	out := Runbook{}
	push := func(repoTag string, platforms ...string) {
		out[repoTag] = r.Push(t, repoTag, platforms...)
	}
	for _, tag := range []string{"1.2.1", "1.2.0", "1.1.0", "0.8.5"} {
		push(RetailUI+":"+tag, MultiArch...)
	}
	for _, repo := range []string{RetailCatalog, RetailCart, RetailOrders, RetailCheckout} {
		push(repo+":"+RunbookTag, MultiArch...)
	}
	push(RetailAssetsAMD64+":"+RunbookTag, "linux/amd64")
	push(RetailUtilsAMD64Index+":"+RunbookTag, "linux/amd64", "unknown/unknown")
	return out
}
