package charttest

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/jwt-sidecar/jwt-sidecar/injector"
	"github.com/jwt-sidecar/jwt-sidecar/internal/telemetry"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// series is every series the sidecar and the injector export, by exact
// name (a histogram x as x_bucket, x_count and x_sum), from their real
// instruments after every label value they use has been recorded once.
func exportedSeries(t *testing.T) map[string][]map[string]string {
	t.Helper()
	sidecarReg := prometheus.NewRegistry()
	m := metrics.New(sidecarReg, telemetry.Labels())
	m.IntrospectionMode()
	for _, src := range []string{"https://idp.example/jwks.json", "oidc:https://idp.example", "file:/keys/jwks.json", "pem:/keys/a.pem", "hmac:/keys/secret"} {
		for _, trig := range []string{keys.TriggerStart, keys.TriggerInterval, keys.TriggerUnknownKID, keys.TriggerFileChange} {
			for _, res := range []string{keys.RefreshOK, keys.RefreshError, keys.RefreshInvalid, keys.RefreshNotModified, keys.RefreshEmpty, keys.RefreshCooldown, keys.RefreshFromDisk} {
				m.KeyRefresh(src, trig, res)
			}
		}
		m.KeysLoaded(src, 2, time.Now())
	}
	m.Verification(verifier.ModeJWT, time.Millisecond)
	m.Verification(verifier.ModeIntrospection, time.Millisecond)
	p := metrics.NewRules(sidecarReg)
	p.Loaded(time.Now(), false)

	injectorReg := prometheus.NewRegistry()
	im := injector.NewMetrics(injectorReg)
	for _, r := range injector.FailureReasons() {
		im.Decision("shop", injector.Refused, r, time.Millisecond)
	}
	im.Decision("shop", injector.Injected, "", time.Millisecond)
	im.CertificateLoaded(nil, time.Now().Add(time.Hour))

	relayReg := prometheus.NewRegistry()
	rm := metrics.NewRelay(relayReg)
	for _, trig := range []string{keys.TriggerStart, keys.TriggerInterval, keys.TriggerUnknownKID} {
		for _, res := range []string{keys.RefreshOK, keys.RefreshError, keys.RefreshInvalid, keys.RefreshNotModified, keys.RefreshEmpty, keys.RefreshCooldown, keys.RefreshFromDisk} {
			rm.KeyRefresh("https://idp.example/jwks.json", trig, res)
		}
	}
	rm.KeysLoaded("https://idp.example/jwks.json", 2, time.Now())
	for _, cache := range []string{keys.RelayHit, keys.RelayMiss} {
		for _, status := range []string{"200", "304", "503"} {
			rm.RelayRequest("https://idp.example/jwks.json", status, cache)
		}
	}
	for _, status := range []string{"400", "404", "405"} {
		rm.RelayRequest("", status, keys.RelayNone)
	}

	out := map[string][]map[string]string{}
	for _, reg := range []*prometheus.Registry{sidecarReg, injectorReg, relayReg} {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, mt := range f.GetMetric() {
				l := map[string]string{}
				for _, lp := range mt.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				names := []string{f.GetName()}
				if f.GetType() == dto.MetricType_HISTOGRAM {
					names = []string{f.GetName() + "_bucket", f.GetName() + "_count", f.GetName() + "_sum"}
				}
				for _, n := range names {
					out[n] = append(out[n], l)
				}
			}
		}
	}
	return out
}

// scrapeLabels are added by Prometheus at scrape time (the PodMonitor adds
// workload), so no exposition carries them.
var scrapeLabels = []string{"job", "instance", "namespace", "pod", "container", "workload"}

// alertRule is one rule of the rendered PrometheusRule.
type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func renderedAlerts(t *testing.T, values string) []alertRule {
	t.Helper()
	objs := objects(t, manifests(render(t, parseValues(t, values))))
	rule := decode[struct {
		Spec struct {
			Groups []struct {
				Name  string      `json:"name"`
				Rules []alertRule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
		Kind       string         `json:"kind"`
		APIVersion string         `json:"apiVersion"`
		Metadata   map[string]any `json:"metadata"`
	}](t, find(t, objs, "PrometheusRule"))
	var out []alertRule
	for _, g := range rule.Spec.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestAlertsNameExportedSeries parses every alert expression with
// Prometheus's own parser and checks each selector against the series the
// real instruments export: the metric name, every label it matches or
// groups by, and the values it names.
func TestAlertsNameExportedSeries(t *testing.T) {
	exported := exportedSeries(t)
	alerts := renderedAlerts(t, "prometheusRule: {enabled: true}\nserviceMonitor: {enabled: true}\n"+relayValue)
	if len(alerts) < 10 {
		t.Fatalf("%d alerts, want every one of docs/operations.md", len(alerts))
	}
	for _, a := range alerts {
		t.Run(a.Alert, func(t *testing.T) {
			expr, err := promql.ParseExpr(a.Expr)
			if err != nil {
				t.Fatalf("%v\n%s", err, a.Expr)
			}
			if expr.Type() != parser.ValueTypeVector {
				t.Errorf("the expression is a %s, want an instant vector", expr.Type())
			}
			for _, p := range selectorProblems(expr, exported, a.Alert == "JWTSidecarInjectorDown") {
				t.Error(p)
			}
			if _, err := model.ParseDuration(a.For); err != nil {
				t.Errorf("for %q: %v", a.For, err)
			}
			if s := a.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("severity %q, want critical or warning", s)
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(a.Annotations[k]) == "" {
					t.Errorf("no %s", k)
				}
			}
		})
	}
}

// selectorProblems says what in e the exported series do not have. up, the
// series Prometheus writes for every target, is allowed where upOK.
func selectorProblems(e parser.Expr, exported map[string][]map[string]string, upOK bool) []string {
	var problems []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if n.Name == "up" && upOK {
				return nil
			}
			ss, ok := exported[n.Name]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: no such series is exported", n.Name))
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel || slices.Contains(scrapeLabels, m.Name) {
					continue
				}
				if p := matcherProblem(m, ss); p != "" {
					problems = append(problems, n.Name+": "+p)
				}
			}
		case *parser.AggregateExpr:
			for _, l := range n.Grouping {
				if slices.Contains(scrapeLabels, l) {
					continue
				}
				var found bool
				parser.Inspect(n.Expr, func(c parser.Node, _ []parser.Node) error {
					if vs, ok := c.(*parser.VectorSelector); ok {
						for _, s := range exported[vs.Name] {
							_, has := s[l]
							found = found || has
						}
					}
					return nil
				})
				if !found {
					problems = append(problems, fmt.Sprintf("groups by %q, which no series of %s has", l, n.Expr))
				}
			}
		}
		return nil
	})
	return problems
}

// promql parses as the Prometheus server does: no experimental functions.
var promql = parser.NewParser(parser.Options{})

var literalAlternatives = regexp.MustCompile(`^[\w:-]+(\|[\w:-]+)*$`)

func matcherProblem(m *labels.Matcher, ss []map[string]string) string {
	values := map[string]bool{}
	for _, s := range ss {
		if v, ok := s[m.Name]; ok {
			values[v] = true
		}
	}
	switch {
	case len(values) == 0:
		return fmt.Sprintf("matcher %s: no series has the label %q", m, m.Name)
	case m.Type == labels.MatchEqual && !values[m.Value]:
		return fmt.Sprintf("matcher %s: no series has that value", m)
	case (m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp) && literalAlternatives.MatchString(m.Value):
		for _, v := range strings.Split(m.Value, "|") {
			if !values[v] {
				return fmt.Sprintf("matcher %s: no series has the value %q", m, v)
			}
		}
	}
	return ""
}

// TestAlertChecksCatchMistakes shows the selector check fails what it exists for.
func TestAlertChecksCatchMistakes(t *testing.T) {
	exported := exportedSeries(t)
	for _, tt := range []struct{ expr, problem string }{
		{expr: `sum by (namespace, reason) (rate(jwt_sidecar_requests_total{outcome="forbidden"}[5m]))`},
		{expr: `jwt_sidecar_request_total`, problem: "no such series"},
		{expr: `jwt_sidecar_requests_total{outcome="refused"}`, problem: "no series has that value"},
		{expr: `jwt_sidecar_key_refreshes_total{result=~"error|timeout"}`, problem: `the value "timeout"`},
		{expr: `sum by (mode) (jwt_sidecar_requests_total)`, problem: `groups by "mode"`},
		{expr: `jwt_sidecar_keys{provider="x"}`, problem: `the label "provider"`},
		{expr: `up == 0`, problem: "no such series"},
	} {
		expr, err := promql.ParseExpr(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		got := selectorProblems(expr, exported, false)
		if tt.problem == "" && len(got) != 0 || tt.problem != "" && (len(got) != 1 || !strings.Contains(got[0], tt.problem)) {
			t.Errorf("%s: problems %q, want one with %q", tt.expr, got, tt.problem)
		}
	}
}

// TestAlertsHaveRunbooks: every alert's runbook_url is the anchor of a
// section of docs/operations.md named after it, and every section there is
// an alert the chart ships.
func TestAlertsHaveRunbooks(t *testing.T) {
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^### (JWTSidecar\w+)\s*$`).FindAllStringSubmatch(string(raw), -1) {
		sections[m[1]] = true
	}
	base := loadChart(t).Values["prometheusRule"].(map[string]any)["runbookBaseURL"].(string)
	alerts := renderedAlerts(t, "prometheusRule: {enabled: true}\npodMonitor: {enabled: true}\n"+relayValue)
	for _, a := range alerts {
		if !sections[a.Alert] {
			t.Errorf("docs/operations.md has no section ### %s", a.Alert)
		}
		if want := base + "#" + strings.ToLower(a.Alert); a.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %s, want %s", a.Alert, a.Annotations["runbook_url"], want)
		}
		delete(sections, a.Alert)
	}
	for s := range sections {
		t.Errorf("docs/operations.md has a runbook for %s, which the chart does not ship", s)
	}
	// Without a monitor of the injector there is no up series to watch.
	for _, a := range renderedAlerts(t, "prometheusRule: {enabled: true}") {
		if a.Alert == "JWTSidecarInjectorDown" {
			t.Error("JWTSidecarInjectorDown renders although no monitor scrapes the injector")
		}
	}
}

// TestAlertThresholdsFromValues: the values reach the expressions.
func TestAlertThresholdsFromValues(t *testing.T) {
	alerts := renderedAlerts(t, readValuesText(t, valueSets["full"]))
	want := map[string]string{
		"JWTSidecarKeysStale":                   "> 1800",
		"JWTSidecarRefusalSpike":                "> 0.2",
		"JWTSidecarUpstreamErrors":              "> 0.01",
		"JWTSidecarInjectorCertificateExpiring": "< 864000",
		"JWTSidecarKeyRelayStale":               "> 900",
	}
	for _, a := range alerts {
		if w, ok := want[a.Alert]; ok && !strings.Contains(a.Expr, w) {
			t.Errorf("%s: %q lacks %q", a.Alert, a.Expr, w)
		}
		if a.Labels["team"] != "platform" {
			t.Errorf("%s: labels %v, want alertLabels' team", a.Alert, a.Labels)
		}
		if !strings.HasPrefix(a.Annotations["runbook_url"], "https://runbooks.example.com/jwt-sidecar#") {
			t.Errorf("%s: runbook_url %s", a.Alert, a.Annotations["runbook_url"])
		}
	}
}

func readValuesText(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
