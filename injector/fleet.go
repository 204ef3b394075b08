package injector

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// Annotations of the whole sidecar, without the prefix (docs/kubernetes.md,
// "Every setting per pod").
const (
	// ConfigMap names a ConfigMap in the pod's namespace whose key
	// policy.yaml is the sidecar's CONFIG_FILE.
	ConfigMap = "config-map"
	// EnvPrefix starts one annotation per sidecar variable:
	// jwt-sidecar.io/env-CLOCK_SKEW: 10s.
	EnvPrefix = "env-"

	CPURequest    = "cpu-request"
	MemoryRequest = "memory-request"
	CPULimit      = "cpu-limit"
	MemoryLimit   = "memory-limit"
)

// Where the policy ConfigMap is mounted. The whole directory is mounted
// (never a subPath): the kubelet swaps the directory's symlink when the
// ConfigMap changes, and the sidecar's reload sees the new file.
const (
	PolicyVolumeName = "jwt-sidecar-policy"
	PolicyDir        = "/etc/jwt-sidecar/policy"
	PolicyKey        = "policy.yaml"
)

// ownVars are the variables the injector itself sets: a pod cannot
// override them, because the patch depends on them (ports, probes, the
// cache volume, the mounted policy file).
var ownVars = map[string]string{
	"LISTEN_ADDR":    "the sidecar listens on 7070",
	"ADMIN_ADDR":     "the probes and the PodMonitor use 7071",
	"UPSTREAM_URL":   "set " + Prefix + UpstreamPort,
	"JWKS_CACHE_DIR": "the injector mounts the cache volume there",
	"CONFIG_FILE":    "set " + Prefix + ConfigMap,
}

// annotationOf maps the variables that have their own annotation to it.
var annotationOf = map[string]string{
	"ISSUERS": Issuers, "OIDC_ISSUER_URL": OIDCIssuerURL, "JWKS_URLS": JWKSURLs,
	"AUDIENCES": Audiences, "CLAIMS_TO_HEADERS": ClaimsToHeaders, "PUBLIC_PATHS": PublicPaths,
	"REQUIRED_SCOPES": RequiredScopes, "TOKEN_LOOKUP": TokenLookup,
}

// fileVars name files inside the sidecar, which has no volume of the pod
// mounted: a pod could only name a path that does not exist there.
func fileVar(name string) bool {
	return strings.HasSuffix(name, "_FILE") || name == "PUBLIC_KEY_FILES"
}

// setVar stores one sidecar variable given by env-NAME. NAME must be one
// of the sidecar's variables (config.Vars, read from the Config struct);
// its value is checked with the rest by config.Load in check.
func (s *settings) setVar(name, value string) error {
	if !slices.Contains(config.Vars(), name) {
		return fmt.Errorf("%s is not a jwt-sidecar variable (see jwt-sidecar --help)", name)
	}
	if why, ok := ownVars[name]; ok {
		return fmt.Errorf("%s is set by the injector: %s", name, why)
	}
	if a, ok := annotationOf[name]; ok {
		return fmt.Errorf("%s has its own annotation: set %s%s", name, Prefix, a)
	}
	if fileVar(name) {
		return fmt.Errorf("%s names a file, and the injector mounts none of the pod's volumes into the sidecar; put the policy in %s%s", name, Prefix, ConfigMap)
	}
	if s.vars == nil {
		s.vars = map[string]string{}
	} else if s.sharedVars {
		s.vars = maps.Clone(s.vars)
	}
	s.sharedVars = false
	s.vars[name] = value
	return nil
}

// dns1123Subdomain is the grammar of a ConfigMap's name.
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func checkConfigMapName(v string) error {
	if len(v) > 253 || !dns1123Subdomain.MatchString(v) {
		return fmt.Errorf("%q is not a ConfigMap name (lower-case RFC 1123 subdomain, at most 253 characters)", v)
	}
	return nil
}

// setResource stores one per-pod request or limit.
func (s *settings) setResource(name, value string) error {
	q, err := resource.ParseQuantity(value)
	if err != nil || q.Sign() <= 0 {
		return fmt.Errorf("%q is not a positive quantity such as 25m, 0.5 or 64Mi", value)
	}
	if s.resources == nil {
		s.resources = map[string]resource.Quantity{}
	} else if s.sharedResources {
		s.resources = maps.Clone(s.resources)
	}
	s.sharedResources = false
	s.resources[name] = q
	return nil
}

// share marks the maps of a copy of the defaults as shared, so that a pod's
// annotations clone them before writing.
func (s settings) share() settings {
	s.sharedVars, s.sharedResources = true, true
	s.fromPod = nil
	return s
}

// requirements are the sidecar's resources: the injector's (chart-wide)
// defaults with the pod's annotations on top. A request above its limit is
// refused: the API server would reject the pod.
func (s *settings) requirements(base corev1.ResourceRequirements) (corev1.ResourceRequirements, error) {
	out := corev1.ResourceRequirements{Requests: maps.Clone(base.Requests), Limits: maps.Clone(base.Limits)}
	put := func(into *corev1.ResourceList, res corev1.ResourceName, name string) {
		if q, ok := s.resources[name]; ok {
			if *into == nil {
				*into = corev1.ResourceList{}
			}
			(*into)[res] = q
		}
	}
	put(&out.Requests, corev1.ResourceCPU, CPURequest)
	put(&out.Requests, corev1.ResourceMemory, MemoryRequest)
	put(&out.Limits, corev1.ResourceCPU, CPULimit)
	put(&out.Limits, corev1.ResourceMemory, MemoryLimit)
	var errs []error
	for _, r := range []struct {
		res      corev1.ResourceName
		req, lim string
	}{{corev1.ResourceCPU, CPURequest, CPULimit}, {corev1.ResourceMemory, MemoryRequest, MemoryLimit}} {
		req, okReq := out.Requests[r.res]
		lim, okLim := out.Limits[r.res]
		if okReq && okLim && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("the %s request %s is more than its limit %s (set %s%s or %s%s)", r.res, req.String(), lim.String(), Prefix, r.req, Prefix, r.lim))
		}
	}
	return out, errors.Join(errs...)
}

// goMemLimit gives the Go runtime the container's memory limit, read by
// the kubelet through the downward API, so that the garbage collector works
// harder before the kernel's OOM killer would act. It is the whole limit:
// the downward API cannot compute a share of it, and GOMEMLIMIT is a soft
// limit on the memory the Go runtime maps, which is nearly all the
// sidecar's (the binary's text is file-backed page cache).
func goMemLimit() corev1.EnvVar {
	return corev1.EnvVar{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
		ContainerName: ContainerName,
		Resource:      "limits.memory",
		Divisor:       resource.MustParse("1"),
	}}}
}

// policyVolume is the ConfigMap with the policy file. Optional is false:
// a pod whose ConfigMap is missing does not start, and says why in its
// events, rather than run a sidecar without its policy.
func policyVolume(name string) corev1.Volume {
	no := false
	mode := int32(0o444)
	return corev1.Volume{Name: PolicyVolumeName, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name},
		Items:                []corev1.KeyToPath{{Key: PolicyKey, Path: PolicyKey}},
		DefaultMode:          &mode,
		Optional:             &no,
	}}}
}

// explain turns config.Load's problems ("VAR: text", one per line) into
// the annotation, or injector default, that set each variable.
func (s *settings) explain(err error) error {
	var lines []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		name, _, _ := strings.Cut(line, ":")
		switch a, ok := annotationOf[name]; {
		case s.vars[name] != "" && s.fromPod[EnvPrefix+name]:
			line = "annotation " + Prefix + EnvPrefix + line
		case s.vars[name] != "":
			line = "the injector's default " + EnvPrefix + line
		case ok && s.fromPod[a]:
			line = "annotation " + Prefix + a + " (" + line + ")"
		case name == "CONFIG_FILE":
			line = "annotation " + Prefix + ConfigMap + " (" + line + ")"
		}
		lines = append(lines, line)
	}
	return errors.New(strings.Join(lines, "; "))
}

// checkFile is check for a pod whose policy is a ConfigMap: the file
// replaces the one-provider settings, so a pod that annotates one of them
// as well is refused (the sidecar would refuse the mix); the injector's
// defaults for them are simply left out. The file itself is not in the
// admission request: the sidecar checks it at start, and a reload keeps
// the last good policy.
func (s *settings) checkFile() (Reason, error) {
	var clash []string
	for _, a := range []string{Issuers, OIDCIssuerURL, JWKSURLs, Audiences, ClaimsToHeaders, PublicPaths, RequiredScopes, TokenLookup} {
		if s.fromPod[a] {
			clash = append(clash, Prefix+a)
		}
	}
	// Variables of config.PolicyVars without an annotation of their own
	// (CLOCK_SKEW, ALGORITHMS, ...) came as env-NAME: a pod's is refused, a
	// default's is left out like the other defaults.
	for _, name := range config.PolicyVars {
		if _, ok := s.vars[name]; !ok {
			continue
		}
		if s.fromPod[EnvPrefix+name] {
			clash = append(clash, Prefix+EnvPrefix+name)
			continue
		}
		s.vars = maps.Clone(s.vars)
		delete(s.vars, name)
	}
	if len(clash) > 0 {
		return Conflict, fmt.Errorf("%s%s: the policy file replaces %s; remove them", Prefix, ConfigMap, strings.Join(clash, ", "))
	}
	return s.load()
}

// checkVars validates the defaults' env-NAME variables on their own, with a
// placeholder issuer and key source: a default the sidecar would refuse
// fails the injector's start rather than every pod.
func (s *settings) checkVars() error {
	if len(s.vars) == 0 {
		return nil
	}
	environ := maps.Clone(s.vars)
	environ["UPSTREAM_URL"] = "http://127.0.0.1:8080"
	if environ["AUTH_MODE"] != "introspection" {
		environ["ISSUERS"] = "https://issuer.invalid"
		environ["JWKS_URLS"] = "https://issuer.invalid/jwks.json"
	}
	if _, err := config.Load(environ); err != nil {
		var keep []string
		for line := range strings.SplitSeq(err.Error(), "\n") {
			name, _, _ := strings.Cut(line, ":")
			if _, ok := s.vars[name]; ok {
				keep = append(keep, line)
			}
		}
		if len(keep) > 0 {
			return errors.New(strings.Join(keep, "; "))
		}
	}
	return nil
}
