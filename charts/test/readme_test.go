package charttest

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// valueLeaves walks the chart's values beside values.schema.json: a
// non-empty map whose schema lists properties is walked into; anything else
// (a scalar, a list, an empty map, a free-form object such as a
// securityContext) is one documented value.
func valueLeaves(t *testing.T) map[string]any {
	t.Helper()
	ch := loadChart(t)
	var schema map[string]any
	if err := json.Unmarshal(ch.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	defs, _ := schema["definitions"].(map[string]any)
	resolve := func(n map[string]any) map[string]any {
		for n != nil {
			ref, ok := n["$ref"].(string)
			if !ok {
				break
			}
			n, _ = defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		}
		return n
	}
	out := map[string]any{}
	var walk func(v any, s map[string]any, path string)
	walk = func(v any, s map[string]any, path string) {
		s = resolve(s)
		m, isMap := v.(map[string]any)
		props, hasProps := s["properties"].(map[string]any)
		if !isMap || len(m) == 0 || !hasProps {
			out[path] = v
			return
		}
		for k, x := range m {
			sub, _ := props[k].(map[string]any)
			p := k
			if path != "" {
				p = path + "." + k
			}
			walk(x, sub, p)
		}
	}
	walk(map[string]any(ch.Values), schema, "")
	return out
}

var readmeRow = regexp.MustCompile("^\\| `([^`]+)` \\| `(.*)` \\| (.*) \\|$")

// TestChartReadmeListsEveryValue: README.md's table and values.yaml list the
// same values with the same defaults, each with a meaning.
func TestChartReadmeListsEveryValue(t *testing.T) {
	raw, err := os.ReadFile("../jwt-sidecar/README.md")
	if err != nil {
		t.Fatal(err)
	}
	leaves := valueLeaves(t)
	seen := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := readmeRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key, def, meaning := m[1], m[2], strings.TrimSpace(m[3])
		if seen[key] {
			t.Errorf("README lists %s twice", key)
		}
		seen[key] = true
		want, ok := leaves[key]
		if !ok {
			t.Errorf("README lists %s, which values.yaml does not have", key)
			continue
		}
		var got any
		if err := json.Unmarshal([]byte(def), &got); err != nil {
			t.Errorf("README default of %s, %s, is not JSON: %v", key, def, err)
			continue
		}
		if !reflect.DeepEqual(got, normalize(t, want)) {
			wantJSON, _ := json.Marshal(want)
			t.Errorf("README default of %s is %s, values.yaml has %s", key, def, wantJSON)
		}
		if len(meaning) < 10 {
			t.Errorf("README: %s has no meaning", key)
		}
	}
	var missing []string
	for k := range leaves {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("README does not list %v", missing)
	}
	if len(seen) < 50 {
		t.Errorf("README lists %d values: the table did not parse", len(seen))
	}
}

// normalize makes v what json.Unmarshal would give for it.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
