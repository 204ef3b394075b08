// Package stack tests the deployment files that users run as they are: the
// docker-compose stack, its CI override, the Prometheus configuration and
// the Grafana dashboard. It is a module of its own so that compose-go and
// Prometheus's PromQL parser stay out of the binaries' go.mod; it runs the
// binaries with the main module's test/proctest, from this checkout (the
// replace directive in go.mod).
package stack

import (
	_ "github.com/compose-spec/compose-go/v2/loader"
	_ "github.com/prometheus/prometheus/promql/parser"
)
