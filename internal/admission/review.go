// Package admission is pullfix's optional validating admission webhook: it
// checks, before any pod exists, that the images a workload change brings
// can be pulled — with the pull credentials the pods would use, for the
// platforms the nodes run — and answers with admission warnings (which
// `kubectl apply` prints) naming what the registry showed and a verified
// replacement. Denying is opt-in per namespace.
//
// It must never hurt the cluster: the webhook is registered with
// failurePolicy Ignore, every review has a hard time budget well under the
// webhook's timeout (a registry that hangs means "allowed, no warning"),
// answers are cached, an image that did not change costs no registry
// request, and nothing here writes to the object under review.
package admission

import (
	"encoding/json"
	"fmt"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workload is the part of a reviewed object the check needs: what it is,
// and the pod template its pods would be made from.
type Workload struct {
	Kind      string // Deployment, StatefulSet, DaemonSet, CronJob, Job, Pod
	Namespace string
	Name      string
	Spec      *corev1.PodSpec
	// Controlled is true for a Pod or Job that a controller owns: its
	// owner's change was the one reviewed (or will be), and whoever sees
	// this review's warnings is a controller, not a person.
	Controlled bool
}

// ImageUse is one image a pod template pulls, and where.
type ImageUse struct {
	// Container is the container's name, or "volume:NAME" for an image volume.
	Container string
	Image     string
}

// Images lists every image the pod spec pulls: init containers,
// containers, and image volumes (an image volume's reference is pulled by
// the same image manager, with the same credentials). Ephemeral
// containers are added through a subresource the webhook does not review.
func Images(spec *corev1.PodSpec) []ImageUse {
	if spec == nil {
		return nil
	}
	var out []ImageUse
	for _, c := range spec.InitContainers {
		out = append(out, ImageUse{Container: c.Name, Image: c.Image})
	}
	for _, c := range spec.Containers {
		out = append(out, ImageUse{Container: c.Name, Image: c.Image})
	}
	for _, v := range spec.Volumes {
		if v.Image != nil && v.Image.Reference != "" {
			out = append(out, ImageUse{Container: "volume:" + v.Name, Image: v.Image.Reference})
		}
	}
	return out
}

// ChangedImages returns the images of cur that old does not pull anywhere,
// each once, in cur's order. On a create old is nil and every image is new.
// An image that was already pulled by the old template — in any container —
// is not asked about again: it is running (or failing) already, and a
// change elsewhere in the object (a label, a replica count, a controller's
// own update) must cost no registry request.
func ChangedImages(cur, old *corev1.PodSpec) []ImageUse {
	had := map[string]bool{}
	for _, u := range Images(old) {
		had[u.Image] = true
	}
	var out []ImageUse
	seen := map[string]bool{}
	for _, u := range Images(cur) {
		if u.Image == "" || had[u.Image] || seen[u.Image] {
			continue
		}
		seen[u.Image] = true
		out = append(out, u)
	}
	return out
}

// OldImage returns the image the same container (or image volume) pulled
// in old, "" if it did not exist: the image a person replaced is the
// first candidate when the new one cannot be pulled.
func OldImage(old *corev1.PodSpec, container string) string {
	for _, u := range Images(old) {
		if u.Container == container {
			return u.Image
		}
	}
	return ""
}

// decodeWorkload decodes raw (an object of the request's kind) into a
// Workload. Kinds outside the six reviewed give (nil, nil): the webhook
// answers "allowed" for anything it was not built to check.
func decodeWorkload(kind metav1.GroupVersionKind, raw []byte) (*Workload, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var meta metav1.ObjectMeta
	var spec *corev1.PodSpec
	switch kind.Group + "/" + kind.Kind {
	case "apps/Deployment":
		var o appsv1.Deployment
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		meta, spec = o.ObjectMeta, &o.Spec.Template.Spec
	case "apps/StatefulSet":
		var o appsv1.StatefulSet
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		meta, spec = o.ObjectMeta, &o.Spec.Template.Spec
	case "apps/DaemonSet":
		var o appsv1.DaemonSet
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		meta, spec = o.ObjectMeta, &o.Spec.Template.Spec
	case "batch/CronJob":
		var o batchv1.CronJob
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		meta, spec = o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
	case "batch/Job":
		var o batchv1.Job
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		meta, spec = o.ObjectMeta, &o.Spec.Template.Spec
	case "/Pod":
		var o corev1.Pod
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		meta, spec = o.ObjectMeta, &o.Spec
	default:
		return nil, nil
	}
	w := &Workload{Kind: kind.Kind, Namespace: meta.Namespace, Name: meta.Name, Spec: spec}
	w.Controlled = slices.ContainsFunc(meta.OwnerReferences, func(r metav1.OwnerReference) bool {
		return r.Controller != nil && *r.Controller
	})
	if w.Name == "" {
		// generateName: the name is not known yet at admission.
		w.Name = meta.GenerateName
	}
	return w, nil
}

// Request is what one admission review asks, decoded.
type Request struct {
	UID       string
	Operation admissionv1.Operation
	DryRun    bool
	User      string
	Cur, Old  *Workload
	// Changed are the images to check (see ChangedImages).
	Changed []ImageUse
}

// DecodeRequest turns an AdmissionRequest into a Request. A kind it does
// not review, a delete, or a Pod or Job a controller owns gives a Request
// with nothing Changed.
func DecodeRequest(r *admissionv1.AdmissionRequest) (Request, error) {
	if r == nil {
		return Request{}, fmt.Errorf("admission review without a request")
	}
	out := Request{UID: string(r.UID), Operation: r.Operation, User: r.UserInfo.Username}
	if r.DryRun != nil {
		out.DryRun = *r.DryRun
	}
	if r.Operation != admissionv1.Create && r.Operation != admissionv1.Update {
		return out, nil
	}
	if r.SubResource != "" {
		return out, nil // status, scale, ephemeralcontainers: no template change to review
	}
	cur, err := decodeWorkload(r.Kind, r.Object.Raw)
	if err != nil {
		return out, fmt.Errorf("decode %s: %w", r.Kind.Kind, err)
	}
	if cur == nil || cur.Controlled {
		return out, nil
	}
	if cur.Namespace == "" {
		cur.Namespace = r.Namespace
	}
	if cur.Name == "" {
		cur.Name = r.Name
	}
	out.Cur = cur
	var oldSpec *corev1.PodSpec
	if r.Operation == admissionv1.Update {
		old, err := decodeWorkload(r.Kind, r.OldObject.Raw)
		if err != nil {
			return out, fmt.Errorf("decode old %s: %w", r.Kind.Kind, err)
		}
		if old != nil {
			out.Old, oldSpec = old, old.Spec
		}
	}
	out.Changed = ChangedImages(cur.Spec, oldSpec)
	return out, nil
}
