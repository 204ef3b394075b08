package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v4"
)

// The files Grafana is provisioned with (docs/compose.md). The dashboard is
// the Helm chart's: compose mounts its folder.
const (
	dashboardPath  = "../../charts/jwt-sidecar/dashboards/jwt-sidecar.json"
	datasourcePath = "../../deploy/grafana/provisioning/datasources/prometheus.yaml"
	providerPath   = "../../deploy/grafana/provisioning/dashboards/dashboards.yaml"

	// datasourceUID is the compose stack's Prometheus datasource: the
	// default one, which the dashboard's datasource variable picks.
	datasourceUID = "prometheus"
	// panelDatasource is how every panel and query names its datasource:
	// the variable, so that a cluster's Grafana can choose its Prometheus.
	panelDatasource = "${datasource}"
)

// dashboardVariables are the dashboard's query variables, with the value
// "All" gives them (allValue): every one is a multi-value regex.
var dashboardVariables = map[string]string{
	"namespace": ".*",
	"pod":       ".*",
	"provider":  ".*",
}

// dashboard is the part of Grafana's dashboard JSON model the tests read.
type dashboard struct {
	ID            json.RawMessage `json:"id"`
	UID           string          `json:"uid"`
	Title         string          `json:"title"`
	SchemaVersion int             `json:"schemaVersion"`
	Refresh       string          `json:"refresh"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	GridPos     *gridPos       `json:"gridPos"`
	Datasource  *datasourceRef `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []panelTarget `json:"targets"`
	Panels  []panel       `json:"panels"` // a collapsed row keeps its panels here
}

// variable is one template variable.
type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or an object for query variables
	Datasource *datasourceRef  `json:"datasource"`
	Definition string          `json:"definition"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

type gridPos struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panelTarget struct {
	RefID        string         `json:"refId"`
	Datasource   *datasourceRef `json:"datasource"`
	Expr         string         `json:"expr"`
	LegendFormat string         `json:"legendFormat"`
}

// loadDashboard reads and decodes the dashboard, refusing duplicate keys:
// encoding/json keeps the last of two, which hides a hand-editing mistake.
func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := noDuplicateKeys(data); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// noDuplicateKeys reports the first object key that appears twice in one
// object of data.
func noDuplicateKeys(data []byte) error {
	return checkJSONValue(json.NewDecoder(bytes.NewReader(data)))
}

// checkJSONValue reads one JSON value from dec, objects and arrays with
// everything in them.
func checkJSONValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		keys := map[string]bool{}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := key.(string) // an object's keys are strings
			if keys[k] {
				return fmt.Errorf("key %q appears twice in one object (before offset %d)", k, dec.InputOffset())
			}
			keys[k] = true
			if err := checkJSONValue(dec); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for dec.More() {
			if err := checkJSONValue(dec); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// allPanels is every panel, rows included, with a collapsed row's panels
// after the row.
func allPanels(d dashboard) []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func TestDashboardModel(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != "jwt-sidecar" {
		t.Errorf("uid = %q, want the fixed jwt-sidecar (links and the README point at /d/jwt-sidecar)", d.UID)
	}
	if d.Title == "" {
		t.Error("the dashboard has no title")
	}
	// A provisioned dashboard must not carry a database id: Grafana would
	// try to overwrite whatever dashboard has that id.
	if id := strings.TrimSpace(string(d.ID)); id != "" && id != "null" {
		t.Errorf("id = %s, want null or absent", id)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion = %d, want 39 or later (Grafana 10.4+)", d.SchemaVersion)
	}
	// A fleet of hundreds of sidecars: every refresh runs every query.
	if d.Refresh != "30s" {
		t.Errorf("refresh = %q, want 30s", d.Refresh)
	}
	if d.Time.From != "now-15m" || d.Time.To != "now" {
		t.Errorf("time = %s..%s, want now-15m..now", d.Time.From, d.Time.To)
	}
	// The variables: the datasource first (the others query it), then
	// namespace, pod and provider, each multi-value with "All" as .*.
	var names []string
	for _, v := range d.Templating.List {
		names = append(names, v.Name)
	}
	if want := []string{"datasource", "namespace", "pod", "provider"}; !slices.Equal(names, want) {
		t.Fatalf("variables = %v, want %v", names, want)
	}
	if ds := d.Templating.List[0]; ds.Type != "datasource" || string(ds.Query) != `"prometheus"` {
		t.Errorf("variable datasource: type %s, query %s; want a datasource variable of type prometheus", ds.Type, ds.Query)
	}
	for _, v := range d.Templating.List[1:] {
		if v.Type != "query" || !v.Multi || !v.IncludeAll || v.AllValue != dashboardVariables[v.Name] {
			t.Errorf("variable %s: type %s, multi %t, includeAll %t, allValue %q; want a multi-value query with All = %q",
				v.Name, v.Type, v.Multi, v.IncludeAll, v.AllValue, dashboardVariables[v.Name])
		}
		if v.Datasource == nil || v.Datasource.UID != panelDatasource {
			t.Errorf("variable %s: datasource %+v, want uid %s", v.Name, v.Datasource, panelDatasource)
		}
		if _, _, err := labelValuesQuery(v); err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
		}
	}
}

// labelValuesQuery parses a query variable's definition, which must be
// label_values(SELECTOR, LABEL).
func labelValuesQuery(v variable) (*parser.VectorSelector, string, error) {
	m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(v.Definition)
	if m == nil {
		return nil, "", fmt.Errorf("definition %q is not label_values(SELECTOR, LABEL)", v.Definition)
	}
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &q); err != nil || q.Query != v.Definition {
		return nil, "", fmt.Errorf("query %s differs from the definition %q", v.Query, v.Definition)
	}
	expr, err := parseQuery(m[1])
	if err != nil {
		return nil, "", err
	}
	vs, ok := expr.(*parser.VectorSelector)
	if !ok {
		return nil, "", fmt.Errorf("%s is not a series selector", m[1])
	}
	return vs, m[2], nil
}

func TestDashboardPanels(t *testing.T) {
	d := loadDashboard(t)
	panels := allPanels(d)
	if len(panels) == 0 {
		t.Fatal("the dashboard has no panels")
	}
	ids := map[int]string{}
	titles := map[string]bool{}
	for _, p := range panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: id must be positive", name)
		}
		if other, ok := ids[p.ID]; ok {
			t.Errorf("%s: id %d is also panel %q", name, p.ID, other)
		}
		ids[p.ID] = p.Title
		if strings.TrimSpace(p.Title) == "" {
			t.Errorf("%s: no title", name)
		}
		if titles[p.Title] {
			t.Errorf("%s: the title appears twice", name)
		}
		titles[p.Title] = true
		checkGridPos(t, name, p.GridPos)
		if p.Type == "row" {
			if len(p.Targets) != 0 {
				t.Errorf("%s: a row has no queries, this one has %d", name, len(p.Targets))
			}
			continue
		}
		if p.Type == "" {
			t.Errorf("%s: no type", name)
		}
		if len(p.Panels) != 0 {
			t.Errorf("%s: only rows hold panels", name)
		}
		if p.Datasource == nil || p.Datasource.UID != panelDatasource || p.Datasource.Type != "prometheus" {
			t.Errorf("%s: datasource = %+v, want type prometheus, uid %s", name, p.Datasource, panelDatasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", name)
		}
		refIDs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refIDs[tg.RefID] {
				t.Errorf("%s: refId %q is empty or repeated", name, tg.RefID)
			}
			refIDs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != panelDatasource {
				t.Errorf("%s, query %s: datasource = %+v, want uid %s", name, tg.RefID, tg.Datasource, panelDatasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s, query %s: no expression", name, tg.RefID)
			}
		}
	}
	checkNoOverlap(t, d.Panels)
}

// checkGridPos checks that a panel sits inside Grafana's 24-column grid.
func checkGridPos(t *testing.T, name string, g *gridPos) {
	t.Helper()
	switch {
	case g == nil:
		t.Errorf("%s: no gridPos", name)
	case g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24:
		t.Errorf("%s: gridPos %+v is outside the 24-column grid", name, *g)
	}
}

// checkNoOverlap checks that no two panels of one grid cover the same cell
// (Grafana would push one of them down and the layout would not be the
// reviewed one).
func checkNoOverlap(t *testing.T, panels []panel) {
	t.Helper()
	for i, a := range panels {
		for _, b := range panels[i+1:] {
			if a.GridPos == nil || b.GridPos == nil {
				continue
			}
			p, q := *a.GridPos, *b.GridPos
			if p.X < q.X+q.W && q.X < p.X+p.W && p.Y < q.Y+q.H && q.Y < p.Y+p.H {
				t.Errorf("panels %q %+v and %q %+v overlap", a.Title, p, b.Title, q)
			}
		}
	}
}

// requiredMetrics are the series the panels must show (docs/contract.md,
// Dashboard, and issue 3), so that no panel silently goes away.
var requiredMetrics = []string{
	"jwt_sidecar_verification_duration_seconds_bucket",
	"jwt_sidecar_requests_total",
	"jwt_sidecar_upstream_duration_seconds_bucket",
	"jwt_sidecar_introspection_requests_total",
	"jwt_sidecar_keys",
	"jwt_sidecar_key_last_refresh_timestamp_seconds",
	"jwt_sidecar_key_refreshes_total",
	"jwt_sidecar_token_age_seconds_bucket",
	"jwt_sidecar_clock_skew_accepted_total",
	"jwt_issuer_requests_total",
	"jwt_loadgen_request_duration_seconds_bucket",
	"jwt_loadgen_requests_total",
	"jwt_key_relay_requests_total",
	"jwt_key_relay_refreshes_total",
	"jwt_key_relay_last_refresh_timestamp_seconds",
}

var legendLabel = regexp.MustCompile(`\{\{\s*([^}\s]+)\s*\}\}`)

func TestDashboardQueries(t *testing.T) {
	d := loadDashboard(t)
	queries := dashboardQueries(t, d)
	used := map[string]bool{}
	for _, q := range queries {
		for _, vs := range vectorSelectors(q.expr) {
			name, err := metricName(vs)
			if err != nil {
				t.Errorf("%s: %v", q, err)
				continue
			}
			used[name] = true
		}
		// A legend naming a label the result does not carry prints an
		// empty string: every series of the panel gets the same name.
		if labels, known := outputLabels(q.expr); known {
			for _, m := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
				if !labels[m[1]] {
					t.Errorf("%s: legend %q uses {{%s}}, but the result only has %v", q, q.legend, m[1], sortedNames(labels))
				}
			}
		}
	}
	for _, name := range requiredMetrics {
		if !used[name] {
			t.Errorf("no panel queries %s", name)
		}
	}
	t.Logf("metrics used: %v", sortedNames(used))

	// Latency quantiles are in seconds and shown with the unit s, which
	// Grafana prints as µs or ms as the value needs: the whole point of the
	// comparison.
	for _, p := range allPanels(d) {
		for _, q := range queries {
			if q.panel != p.Title || !isSecondsQuantile(q.expr) {
				continue
			}
			if p.FieldConfig.Defaults.Unit != "s" {
				t.Errorf("%s: a quantile of seconds, but the panel's unit is %q, want s", q, p.FieldConfig.Defaults.Unit)
			}
		}
	}
}

func TestDashboardChecksCatchMistakes(t *testing.T) {
	t.Run("duplicate keys", func(t *testing.T) {
		for _, tt := range []struct {
			json    string
			wantErr bool
		}{
			{json: `{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}`},
			{json: `{"a": 1, "b": 2, "a": 3}`, wantErr: true},
			{json: `{"panels": [{"id": 1, "title": "x", "id": 2}]}`, wantErr: true},
		} {
			if err := noDuplicateKeys([]byte(tt.json)); (err != nil) != tt.wantErr {
				t.Errorf("noDuplicateKeys(%s) = %v, want an error: %t", tt.json, err, tt.wantErr)
			}
		}
	})
	t.Run("queries that must not parse", func(t *testing.T) {
		for _, expr := range []string{
			`sum(rate(jwt_sidecar_requests_total[$__rate_interval])`,
			`rate(jwt_sidecar_requests_total{job="$job"}[5m])`,
			`rate(jwt_sidecar_requests_total[${window}])`,
		} {
			if _, err := parseQuery(expr); err == nil {
				t.Errorf("parseQuery(%q) succeeded, want an error", expr)
			}
		}
	})
	t.Run("output labels", func(t *testing.T) {
		for _, tt := range []struct {
			expr  string
			want  []string // nil: unknown
			units bool     // a quantile of seconds
		}{
			{expr: `histogram_quantile(0.5, sum by (le, mode) (rate(x_seconds_bucket[$__rate_interval])))`, want: []string{"mode"}, units: true},
			{expr: `(histogram_quantile(0.5, sum by (le) (rate(x_bytes_bucket[5m]))))`, want: []string{}},
			{expr: `time() - max by (job, source) (x_timestamp_seconds)`, want: []string{"job", "source"}},
			{expr: `sum(rate(a[5m])) / (sum(rate(b[5m])) > 0)`, want: []string{}},
			{expr: `sum by (a, b) (x) / on (a) sum by (a) (y)`, want: []string{"a"}},
			{expr: `rate(x_total[5m])`},
			{expr: `sum without (a) (x)`},
		} {
			expr, err := parseQuery(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, known := outputLabels(expr)
			wantKnown := tt.want != nil
			if known != wantKnown || (wantKnown && !slices.Equal(sortedNames(got), tt.want)) {
				t.Errorf("outputLabels(%s) = %v, %t; want %v", tt.expr, sortedNames(got), known, tt.want)
			}
			if isSecondsQuantile(expr) != tt.units {
				t.Errorf("isSecondsQuantile(%s) = %t, want %t", tt.expr, !tt.units, tt.units)
			}
		}
	})
}

// datasourceFile is Grafana's datasource provisioning format, as much of it
// as the file uses; unknown keys fail the decoding (a typo would otherwise
// be ignored by Grafana).
type datasourceFile struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string `yaml:"name"`
		UID       string `yaml:"uid"`
		Type      string `yaml:"type"`
		Access    string `yaml:"access"`
		URL       string `yaml:"url"`
		IsDefault bool   `yaml:"isDefault"`
		Editable  bool   `yaml:"editable"`
		JSONData  struct {
			TimeInterval string `yaml:"timeInterval"`
			HTTPMethod   string `yaml:"httpMethod"`
		} `yaml:"jsonData"`
	} `yaml:"datasources"`
}

// providerFile is Grafana's dashboard provider format, likewise.
type providerFile struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		OrgID                 int    `yaml:"orgId"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func decodeYAMLStrict(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	var ds datasourceFile
	decodeYAMLStrict(t, datasourcePath, &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("%s: apiVersion %d with %d datasources, want 1 and 1", datasourcePath, ds.APIVersion, len(ds.Datasources))
	}
	got := ds.Datasources[0]
	if got.UID != datasourceUID || got.Type != "prometheus" || got.URL != "http://prometheus:9090" ||
		!got.IsDefault || got.Access != "proxy" {
		t.Errorf("datasource = %+v, want uid %s, type prometheus, url http://prometheus:9090, default, access proxy",
			got, datasourceUID)
	}
	if got.JSONData.TimeInterval == "" {
		t.Error("jsonData.timeInterval is empty: Grafana cannot size $__rate_interval to the scrape interval")
	}

	var pf providerFile
	decodeYAMLStrict(t, providerPath, &pf)
	if pf.APIVersion != 1 || len(pf.Providers) != 1 {
		t.Fatalf("%s: apiVersion %d with %d providers, want 1 and 1", providerPath, pf.APIVersion, len(pf.Providers))
	}
	if p := pf.Providers[0]; p.Type != "file" || p.Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("provider = %+v, want type file at /var/lib/grafana/dashboards", p)
	}
}

// panelQuery is one panel target, parsed.
type panelQuery struct {
	panel, refID string
	legend       string
	expr         parser.Expr
}

func (q panelQuery) String() string { return fmt.Sprintf("panel %q, query %s", q.panel, q.refID) }

// dashboardQueries parses every target of every panel; a target that does
// not parse fails the test and is left out.
func dashboardQueries(t *testing.T, d dashboard) []panelQuery {
	t.Helper()
	var out []panelQuery
	for _, p := range allPanels(d) {
		for _, tg := range p.Targets {
			q := panelQuery{panel: p.Title, refID: tg.RefID, legend: tg.LegendFormat}
			expr, err := parseQuery(tg.Expr)
			if err != nil {
				t.Errorf("%s: %v\n%s", q, err, tg.Expr)
				continue
			}
			q.expr = expr
			out = append(out, q)
		}
	}
	if len(out) == 0 {
		t.Fatal("no query parsed")
	}
	return out
}

// sortedNames is the keys of m in order, for stable messages.
func sortedNames[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
