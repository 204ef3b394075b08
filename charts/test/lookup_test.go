package charttest

import (
	"encoding/base64"
	"testing"

	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/fake"
)

var secretsGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// fakeCluster answers helm's lookup from an in-memory dynamic client.
type fakeCluster struct{ client *fake.FakeDynamicClient }

func (f fakeCluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	return f.client.Resource(secretsGVR), true, nil
}

// renderWithCluster renders the default values as an upgrade would, with sec
// already in the release namespace.
func renderWithCluster(t *testing.T, sec *corev1.Secret) map[string]string {
	t.Helper()
	data := map[string]any{}
	for k, v := range sec.Data {
		data[k] = base64.StdEncoding.EncodeToString(v)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata":   map[string]any{"name": sec.Name, "namespace": sec.Namespace},
		"type":       string(sec.Type),
		"data":       data,
	}}
	client := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{secretsGVR: "SecretList"}, obj)
	if _, err := client.Resource(secretsGVR).Namespace(sec.Namespace).Get(t.Context(), sec.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("fake cluster: %v", err)
	}
	ch := loadChart(t)
	vals, err := renderValues(ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.RenderWithClientProvider(ch, vals, fakeCluster{client})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}
