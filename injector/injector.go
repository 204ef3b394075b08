// Package injector is jwt-sidecar's mutating admission webhook
// (admission.k8s.io/v1): it adds the sidecar to pods annotated
// jwt-sidecar.io/inject: "true", configured from the injector's defaults and
// the pod's annotations, and refuses pods whose annotations are malformed
// rather than inject something broken (docs/contract.md, "The injector").
package injector

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Outcome is what the injector decided about one admission request, the
// `outcome` label of the request-duration histogram.
type Outcome string

const (
	Injected Outcome = "injected" // allowed with a patch
	Skipped  Outcome = "skipped"  // allowed, untouched
	Refused  Outcome = "refused"  // allowed=false, or an HTTP error
)

// Reason says why; failure reasons are the `reason` label values of
// jwt_sidecar_injector_failures_total.
type Reason string

// Failure reasons.
const (
	MalformedAnnotation Reason = "malformed_annotation" // an annotation's value is bad, or unknown
	MissingConfig       Reason = "missing_config"       // defaults and annotations leave no issuer or key source
	Conflict            Reason = "conflict"             // settings contradict each other or the pod
	BadRequest          Reason = "bad_request"          // not an AdmissionReview, wrong content type, too large, undecodable pod
	Internal            Reason = "internal"             // the patch could not be built
)

// Reasons for leaving a pod alone.
const (
	NotAPod            Reason = "not_a_pod"
	NotCreate          Reason = "not_create"
	ProtectedNamespace Reason = "protected_namespace"
	NotRequested       Reason = "not_requested"
	AlreadyInjected    Reason = "already_injected"
)

// FailureReasons lists every failure reason, so that each series exists
// from the first scrape.
func FailureReasons() []Reason {
	return []Reason{MalformedAnnotation, MissingConfig, Conflict, BadRequest, Internal}
}

// Names the injector gives to what it adds.
const (
	ContainerName = "jwt-sidecar"
	VolumeName    = "jwt-sidecar-cache"
	CacheDir      = "/var/cache/jwt-sidecar"
)

// protectedNamespaces are never injected, whatever their pods say: a broken
// sidecar there could take the cluster's own components down.
var protectedNamespaces = []string{"kube-system", "kube-public"}

// Options configure an Injector. main builds them from the environment.
type Options struct {
	// Image is the sidecar image; its entrypoint is /jwt-sidecar.
	Image      string
	PullPolicy corev1.PullPolicy
	// Defaults are the settings a pod gets when it does not annotate them,
	// keyed by annotation name without the prefix (Settings lists them).
	// An empty value means unset.
	Defaults  map[string]string
	Resources corev1.ResourceRequirements
	// LogLevel is the sidecar's LOG_LEVEL.
	LogLevel string
	// PrometheusAnnotations adds prometheus.io/scrape, port and path
	// (the sidecar's admin port) to injected pods that set none of their own.
	PrometheusAnnotations bool
}

// Injector decides about admission requests. It is safe for concurrent use.
type Injector struct {
	opts     Options
	defaults settings
	metrics  *Metrics
}

// New checks the options. Defaults that do not parse are reported as
// joined *SettingError values (see CheckDefaults).
func New(opts Options, m *Metrics) (*Injector, error) {
	if strings.TrimSpace(opts.Image) == "" {
		return nil, errors.New("no sidecar image")
	}
	if opts.PullPolicy == "" {
		opts.PullPolicy = corev1.PullIfNotPresent
	}
	d, errs := parseDefaults(opts.Defaults)
	if len(errs) > 0 {
		all := make([]error, len(errs))
		for i, e := range errs {
			all[i] = e
		}
		return nil, errors.Join(all...)
	}
	return &Injector{opts: opts, defaults: d, metrics: m}, nil
}

// Decision is the result of Mutate: the response to send and, for metrics
// and logs, what was decided and why.
type Decision struct {
	Response  *admissionv1.AdmissionResponse
	Outcome   Outcome
	Reason    Reason
	Namespace string
	// Pod is the pod's name, or its generateName when it has none yet.
	Pod string
}

// Mutate decides about one admission request. It has no side effects: the
// same request always gets the same decision. It always echoes the UID.
func (in *Injector) Mutate(req *admissionv1.AdmissionRequest) Decision {
	if req == nil {
		return Decision{Response: &admissionv1.AdmissionResponse{}, Outcome: Refused, Reason: BadRequest}
	}
	d := Decision{Namespace: req.Namespace}
	skip := func(r Reason) Decision {
		d.Response = &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
		d.Outcome, d.Reason = Skipped, r
		return d
	}
	refuse := func(r Reason, err error) Decision {
		d.Response = &admissionv1.AdmissionResponse{UID: req.UID, Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Message: "jwt-sidecar injector: " + strings.ReplaceAll(err.Error(), "\n", "; "),
			Reason:  metav1.StatusReasonBadRequest,
			Code:    http.StatusBadRequest,
		}}
		d.Outcome, d.Reason = Refused, r
		return d
	}
	if req.Resource != (metav1.GroupVersionResource{Version: "v1", Resource: "pods"}) || req.SubResource != "" {
		return skip(NotAPod)
	}
	if req.Operation != admissionv1.Create {
		return skip(NotCreate)
	}
	if slices.Contains(protectedNamespaces, req.Namespace) {
		return skip(ProtectedNamespace)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return refuse(BadRequest, fmt.Errorf("the pod cannot be decoded: %w", err))
	}
	d.Pod = pod.Name
	if d.Pod == "" {
		d.Pod = pod.GenerateName
	}
	if d.Namespace == "" {
		d.Namespace = pod.Namespace
	}
	// Only the exact value injects: "True" or "yes" may be a typo for
	// something else, and leaving the pod alone is the safe reading.
	if pod.Annotations[Prefix+Inject] != "true" {
		return skip(NotRequested)
	}
	if pod.Annotations[Prefix+Status] == StatusInjected || hasContainer(&pod, ContainerName) {
		return skip(AlreadyInjected)
	}
	s, err := in.settingsFor(pod.Annotations)
	if err != nil {
		return refuse(MalformedAnnotation, err)
	}
	if r, err := s.check(); err != nil {
		return refuse(r, err)
	}
	res, err := s.requirements(in.opts.Resources)
	if err != nil {
		return refuse(Conflict, err)
	}
	if err := checkPod(&pod); err != nil {
		return refuse(Conflict, err)
	}
	patch, err := json.Marshal(in.patch(&pod, &s, res))
	if err != nil {
		return refuse(Internal, fmt.Errorf("building the patch: %w", err))
	}
	pt := admissionv1.PatchTypeJSONPatch
	d.Response = &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true, Patch: patch, PatchType: &pt}
	d.Outcome, d.Reason = Injected, ""
	return d
}

// settingsFor applies a pod's annotations over the defaults. The error
// names every bad annotation, in a stable order.
func (in *Injector) settingsFor(annotations map[string]string) (settings, error) {
	s := in.defaults.share()
	s.fromPod = map[string]bool{}
	var errs []error
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, Prefix)
		if !ok || name == Inject || name == Status {
			continue
		}
		// An unknown annotation is refused too: a typo such as
		// "audience" would otherwise silently fall back to the default.
		if err := s.set(name, annotations[k]); err != nil {
			errs = append(errs, fmt.Errorf("annotation %s: %w", k, err))
		}
		s.fromPod[name] = true
	}
	return s, errors.Join(errs...)
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// checkPod refuses a pod whose own containers or volumes would collide with
// what the injector adds: containers share one network namespace, and
// volume names are unique.
func checkPod(pod *corev1.Pod) error {
	var errs []error
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.ContainerPort == AuthPort || p.ContainerPort == AdminPort {
					errs = append(errs, fmt.Errorf("container %s uses port %d, which the sidecar needs", c.Name, p.ContainerPort))
				}
			}
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == VolumeName || v.Name == PolicyVolumeName {
			errs = append(errs, fmt.Errorf("the pod already has a volume named %s", v.Name))
		}
	}
	return errors.Join(errs...)
}
