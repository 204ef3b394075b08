package injector

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Operation is one RFC 6902 JSON patch operation.
type Operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// patch adds the sidecar, its cache volume, the status annotation, the
// injected label and, when asked, the prometheus.io/* annotations. An
// absent array or map is added whole: RFC 6902 §4.1 needs the parent of a
// new member to exist.
func (in *Injector) patch(pod *corev1.Pod, s *settings, res corev1.ResourceRequirements) []Operation {
	c := in.container(s, res)
	var ops []Operation
	switch {
	case s.native && pod.Spec.InitContainers == nil:
		ops = append(ops, Operation{"add", "/spec/initContainers", []corev1.Container{c}})
	case s.native:
		// First, so that it is running and ready before any other init
		// container or the app starts (native sidecars start in order).
		ops = append(ops, Operation{"add", "/spec/initContainers/0", c})
	case pod.Spec.Containers == nil:
		ops = append(ops, Operation{"add", "/spec/containers", []corev1.Container{c}})
	default:
		// Last, so that the app stays the pod's default container.
		ops = append(ops, Operation{"add", "/spec/containers/-", c})
	}
	vs := []corev1.Volume{cacheVolume()}
	if s.configMap != "" {
		vs = append(vs, policyVolume(s.configMap))
	}
	if pod.Spec.Volumes == nil {
		ops = append(ops, Operation{"add", "/spec/volumes", vs})
	} else {
		for _, v := range vs {
			ops = append(ops, Operation{"add", "/spec/volumes/-", v})
		}
	}
	ops = append(ops, addToMap("/metadata/labels", pod.Labels, map[string]string{InjectedLabel: "true"})...)
	annotations := map[string]string{Prefix + Status: StatusInjected}
	if in.opts.PrometheusAnnotations && !hasPrometheusAnnotation(pod.Annotations) {
		// For scrapers that discover pods by annotation (one port per pod):
		// the sidecar's admin port. A pod that already names its own
		// prometheus.io/* target keeps it.
		annotations[PrometheusScrape] = "true"
		annotations[PrometheusPort] = strconv.Itoa(AdminPort)
		annotations[PrometheusPath] = "/metrics"
	}
	ops = append(ops, addToMap("/metadata/annotations", pod.Annotations, annotations)...)
	return ops
}

// addToMap adds entries to the map at path: the whole map when the pod has
// none, else one operation per key, in key order (the patch is
// golden-tested).
func addToMap(path string, have, add map[string]string) []Operation {
	if have == nil {
		return []Operation{{"add", path, add}}
	}
	keys := slices.Sorted(maps.Keys(add))
	ops := make([]Operation, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, Operation{"add", path + "/" + escape(k), add[k]})
	}
	return ops
}

// hasPrometheusAnnotation reports whether the pod sets any prometheus.io/*
// annotation of its own.
func hasPrometheusAnnotation(annotations map[string]string) bool {
	for k := range annotations {
		if strings.HasPrefix(k, "prometheus.io/") {
			return true
		}
	}
	return false
}

// escape makes a JSON pointer reference token (RFC 6901 §3): "~" first,
// then "/".
func escape(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}

// cacheVolume keeps the sidecar's last good key sets (JWKS_CACHE_DIR). An
// emptyDir lives as long as the pod, so a restarted sidecar still verifies
// during an issuer outage; the root filesystem is read-only.
func cacheVolume() corev1.Volume {
	limit := resource.MustParse("16Mi")
	return corev1.Volume{
		Name:         VolumeName,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &limit}},
	}
}

func (in *Injector) container(s *settings, res corev1.ResourceRequirements) corev1.Container {
	var env []corev1.EnvVar
	for _, e := range s.env(in.opts.LogLevel) {
		env = append(env, corev1.EnvVar{Name: e.name, Value: e.value})
	}
	if _, ok := res.Limits[corev1.ResourceMemory]; ok {
		env = append(env, goMemLimit())
	}
	mounts := []corev1.VolumeMount{{Name: VolumeName, MountPath: CacheDir}}
	if s.configMap != "" {
		mounts = append(mounts, corev1.VolumeMount{Name: PolicyVolumeName, MountPath: PolicyDir, ReadOnly: true})
	}
	c := corev1.Container{
		Name:            ContainerName,
		Image:           in.opts.Image,
		ImagePullPolicy: in.opts.PullPolicy,
		Ports: []corev1.ContainerPort{
			{Name: "http-auth", ContainerPort: AuthPort, Protocol: corev1.ProtocolTCP},
			{Name: "http-admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP},
		},
		Env:          env,
		Resources:    res,
		VolumeMounts: mounts,
		// Up to two minutes to load keys (SPEC: /readyz is 200 once every
		// key source has loaded); a native sidecar holds the app back until
		// then.
		StartupProbe:             probe("/readyz", 1, 120),
		ReadinessProbe:           probe("/readyz", 5, 3),
		LivenessProbe:            probe("/healthz", 10, 3),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext:          securityContext(),
	}
	if s.native {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	return c
}

func probe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString("http-admin"), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

// securityContext is the restricted Pod Security Standard and a read-only
// root filesystem; 65532 is the distroless "nonroot" user.
func securityContext() *corev1.SecurityContext {
	yes, no := true, false
	uid := int64(65532)
	return &corev1.SecurityContext{
		RunAsNonRoot:             &yes,
		RunAsUser:                &uid,
		RunAsGroup:               &uid,
		ReadOnlyRootFilesystem:   &yes,
		AllowPrivilegeEscalation: &no,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}
