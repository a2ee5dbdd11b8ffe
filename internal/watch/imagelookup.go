package watch

import (
	"context"
	"log/slog"

	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// ImageLookup is the watcher's in-cluster candidate search for callers
// outside it (the admission webhook): what a namespace's Deployments,
// StatefulSets and DaemonSets run, read in pages and cached per namespace
// for 30 s.
type ImageLookup struct{ in *inputs }

// NewImageLookup returns an ImageLookup reading with cs.
func NewImageLookup(cs kubernetes.Interface) *ImageLookup { return &ImageLookup{in: newInputs(cs)} }

// Lookup returns, for image in namespace, the images of its repository
// that run Ready there under another tag (hints) and the repositories seen
// on its registry (known names), as a diagnose.Target's Lookup wants them.
func (l *ImageLookup) Lookup(ctx context.Context, log *slog.Logger, namespace, image string) ([]diagnose.Hint, []string) {
	return l.in.clusterImages(ctx, log, Key{Namespace: namespace, Image: image})
}
