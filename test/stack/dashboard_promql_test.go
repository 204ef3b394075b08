package stack

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaGlobals are Grafana's built-in variables, with the values a 15m
// range and a 5s scrape interval give them. Grafana substitutes them before
// Prometheus sees the expression, so the parser must see them substituted.
var grafanaGlobals = map[string]string{
	"__rate_interval": "20s",
	"__interval":      "5s",
	"__interval_ms":   "5000",
	"__range":         "15m",
	"__range_s":       "900",
	"__range_ms":      "900000",
}

// grafanaVariable matches the three syntaxes of a variable reference:
// $name, ${name} (optionally ${name:format}) and the deprecated [[name]].
var grafanaVariable = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// substituteGrafanaVariables replaces Grafana's built-in variables and the
// dashboard's own (dashboardVariables, as "All" sets them); any other
// variable is an error.
func substituteGrafanaVariables(expr string) (string, error) {
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVariable.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3] // exactly one of them matched
		if v, ok := grafanaGlobals[name]; ok {
			return v
		}
		if v, ok := dashboardVariables[name]; ok {
			return v
		}
		unknown = append(unknown, ref)
		return ref
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown Grafana variables %v", unknown)
	}
	return out, nil
}

// promql parses like the Prometheus server of the stack: no experimental
// functions.
var promql = parser.NewParser(parser.Options{})

// parseQuery substitutes Grafana's variables and parses the result.
func parseQuery(expr string) (parser.Expr, error) {
	s, err := substituteGrafanaVariables(expr)
	if err != nil {
		return nil, err
	}
	return promql.ParseExpr(s)
}

// vectorSelectors is every series selector in e, including those inside
// range selectors.
func vectorSelectors(e parser.Node) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// metricName is the exact series name vs selects. A dashboard selects
// names exactly, so a regular expression on __name__ is an error.
func metricName(vs *parser.VectorSelector) (string, error) {
	if vs.Name != "" {
		return vs.Name, nil
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value, nil
		}
	}
	return "", fmt.Errorf("selector %s has no exact metric name", vs)
}

// grouping is one aggregation's by-labels and the selectors it aggregates.
type grouping struct {
	labels    []string
	selectors []*parser.VectorSelector
}

// groupings lists every `by (...)` aggregation in e.
func groupings(e parser.Node) []grouping {
	var out []grouping
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if a, ok := n.(*parser.AggregateExpr); ok && !a.Without && len(a.Grouping) > 0 {
			out = append(out, grouping{labels: a.Grouping, selectors: vectorSelectors(a.Expr)})
		}
		return nil
	})
	return out
}

// outputLabels returns the label names of e's result series when e fixes
// them (an aggregation with by, and the functions and operators that keep
// its labels); known is false when the result keeps whatever labels the
// series had.
func outputLabels(e parser.Expr) (names map[string]bool, known bool) {
	switch e := e.(type) {
	case *parser.ParenExpr:
		return outputLabels(e.Expr)
	case *parser.NumberLiteral:
		return map[string]bool{}, true
	case *parser.AggregateExpr:
		if e.Without {
			return nil, false
		}
		names = map[string]bool{}
		for _, l := range e.Grouping {
			names[l] = true
		}
		return names, true
	case *parser.Call:
		if e.Func.Name == "time" {
			return map[string]bool{}, true
		}
		for _, arg := range e.Args {
			if arg.Type() == parser.ValueTypeVector {
				names, known = outputLabels(arg)
				if known && e.Func.Name == "histogram_quantile" {
					delete(names, "le")
				}
				return names, known
			}
		}
	case *parser.BinaryExpr:
		// Series from the left side keep their labels (one-to-one without
		// on(), or group_left); a scalar side adds none.
		side := e.LHS
		if e.LHS.Type() != parser.ValueTypeVector {
			side = e.RHS
		}
		names, known = outputLabels(side)
		if known && e.VectorMatching != nil && e.VectorMatching.Card == parser.CardOneToOne && e.VectorMatching.On {
			for n := range names {
				if !slices.Contains(e.VectorMatching.MatchingLabels, n) {
					delete(names, n)
				}
			}
		}
		return names, known
	}
	return nil, false
}

// isSecondsQuantile reports whether e is a histogram_quantile of a
// histogram in seconds.
func isSecondsQuantile(e parser.Expr) bool {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	call, ok := e.(*parser.Call)
	if !ok || call.Func.Name != "histogram_quantile" {
		return false
	}
	for _, vs := range vectorSelectors(call) {
		if name, err := metricName(vs); err == nil && strings.HasSuffix(name, "_seconds_bucket") {
			return true
		}
	}
	return false
}
