package admission

import (
	"context"
	"time"
)

// HeadsUp is a workload admitted with warnings: the images the registry
// showed cannot be pulled, applied anyway.
type HeadsUp struct {
	Namespace, Kind, Name string
	// User is who applied it (the request's user name).
	User      string
	Operation string // CREATE or UPDATE
	Findings  []Finding
	At        time.Time
}

// Notifier is told about each workload admitted with warnings, once per
// review, off the review's clock (the apply has its answer already). The
// bot posts it to Slack as a heads-up and threads it into the incident if
// the pods then fail.
type Notifier interface {
	HeadsUp(ctx context.Context, h HeadsUp)
}
