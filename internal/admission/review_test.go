package admission

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func podSpec(images ...string) corev1.PodSpec {
	var s corev1.PodSpec
	for i, img := range images {
		s.Containers = append(s.Containers, corev1.Container{Name: string(rune('a' + i)), Image: img})
	}
	return s
}

func raw(t *testing.T, o any) runtime.RawExtension {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

func TestDecodeRequest(t *testing.T) {
	yes := true
	deploy := func(images ...string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ui", Namespace: "shop"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: podSpec(images...)}}}
	}
	withInit := deploy("app:2")
	withInit.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "init:1"}}
	withInit.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "models:3"}}}}
	ownedPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ui-abc", Namespace: "shop",
		OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "ui-1", Controller: &yes}}}, Spec: podSpec("app:1")}
	barePod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "debug-", Namespace: "shop"}, Spec: podSpec("app:1")}
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "shop"},
		Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: podSpec("batch:7")}}}}}
	cronJobOwned := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-1", Namespace: "shop",
		OwnerReferences: []metav1.OwnerReference{{Kind: "CronJob", Name: "nightly", Controller: &yes}}},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: podSpec("batch:7")}}}

	gvk := func(group, kind string) metav1.GroupVersionKind {
		return metav1.GroupVersionKind{Group: group, Version: "v1", Kind: kind}
	}
	tests := []struct {
		name     string
		req      admissionv1.AdmissionRequest
		wantKind string
		wantName string
		want     []string // changed images
	}{
		{name: "create: every image", req: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Kind: gvk("apps", "Deployment"), Object: raw(t, deploy("app:1", "side:1"))},
			wantKind: "Deployment", wantName: "ui", want: []string{"app:1", "side:1"}},
		{name: "update: only the changed image", req: admissionv1.AdmissionRequest{Operation: admissionv1.Update, Kind: gvk("apps", "Deployment"),
			Object: raw(t, deploy("app:2", "side:1")), OldObject: raw(t, deploy("app:1", "side:1"))}, wantKind: "Deployment", wantName: "ui", want: []string{"app:2"}},
		{name: "update: image unchanged", req: admissionv1.AdmissionRequest{Operation: admissionv1.Update, Kind: gvk("apps", "Deployment"),
			Object: raw(t, deploy("app:1")), OldObject: raw(t, deploy("app:1"))}, wantKind: "Deployment", wantName: "ui"},
		{name: "update: image moved between containers is not new", req: admissionv1.AdmissionRequest{Operation: admissionv1.Update, Kind: gvk("apps", "Deployment"),
			Object: raw(t, deploy("side:1", "app:1")), OldObject: raw(t, deploy("app:1", "side:1"))}, wantKind: "Deployment", wantName: "ui"},
		{name: "init containers and image volumes", req: admissionv1.AdmissionRequest{Operation: admissionv1.Update, Kind: gvk("apps", "Deployment"),
			Object: raw(t, withInit), OldObject: raw(t, deploy("app:2"))}, wantKind: "Deployment", wantName: "ui", want: []string{"init:1", "models:3"}},
		{name: "same image twice is asked once", req: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Kind: gvk("apps", "Deployment"), Object: raw(t, deploy("app:1", "app:1"))},
			wantKind: "Deployment", wantName: "ui", want: []string{"app:1"}},
		{name: "cronjob template", req: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Kind: gvk("batch", "CronJob"), Object: raw(t, cron)},
			wantKind: "CronJob", wantName: "nightly", want: []string{"batch:7"}},
		{name: "job of a cronjob: its owner was reviewed", req: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Kind: gvk("batch", "Job"), Object: raw(t, cronJobOwned)}},
		{name: "pod of a replicaset: its owner was reviewed", req: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Kind: gvk("", "Pod"), Object: raw(t, ownedPod)}},
		{name: "bare pod with generateName", req: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Kind: gvk("", "Pod"), Object: raw(t, barePod)},
			wantKind: "Pod", wantName: "debug-", want: []string{"app:1"}},
		{name: "status subresource", req: admissionv1.AdmissionRequest{Operation: admissionv1.Update, SubResource: "status", Kind: gvk("apps", "Deployment"),
			Object: raw(t, deploy("app:2")), OldObject: raw(t, deploy("app:1"))}},
		{name: "delete", req: admissionv1.AdmissionRequest{Operation: admissionv1.Delete, Kind: gvk("apps", "Deployment"), OldObject: raw(t, deploy("app:1"))}},
		{name: "kind not reviewed", req: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Kind: gvk("apps", "ReplicaSet"), Object: raw(t, deploy("app:1"))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeRequest(&tc.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range r.Changed {
				got = append(got, u.Image)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("changed = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("changed = %v, want %v", got, tc.want)
				}
			}
			if tc.wantKind != "" && (r.Cur == nil || r.Cur.Kind != tc.wantKind || r.Cur.Name != tc.wantName || r.Cur.Namespace != "shop") {
				t.Fatalf("workload = %+v, want %s %s in shop", r.Cur, tc.wantKind, tc.wantName)
			}
		})
	}
}

func TestDecodeRequestRejectsGarbage(t *testing.T) {
	_, err := DecodeRequest(&admissionv1.AdmissionRequest{Operation: admissionv1.Create,
		Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, Object: runtime.RawExtension{Raw: []byte(`{"spec":7}`)}})
	if err == nil {
		t.Fatal("a Deployment whose spec is a number decoded")
	}
	if _, err := DecodeRequest(nil); err == nil {
		t.Fatal("a review without a request decoded")
	}
}

func TestOldImage(t *testing.T) {
	old := podSpec("app:1", "side:1")
	if got := OldImage(&old, "b"); got != "side:1" {
		t.Errorf("OldImage(b) = %q", got)
	}
	if got := OldImage(&old, "z"); got != "" {
		t.Errorf("OldImage(z) = %q", got)
	}
	if got := OldImage(nil, "a"); got != "" {
		t.Errorf("OldImage(nil) = %q", got)
	}
}
