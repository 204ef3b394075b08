package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwt-sidecar/jwt-sidecar/metrics"
)

func TestRuleMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewRules(reg)
	// Both reload results exist from the start.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jwt_sidecar_config_reloads_total Reloads of CONFIG_FILE by result: success (the new policy is in force) or failure (the file was refused; the running policy stays).
# TYPE jwt_sidecar_config_reloads_total counter
jwt_sidecar_config_reloads_total{result="failure"} 0
jwt_sidecar_config_reloads_total{result="success"} 0
`), "jwt_sidecar_config_reloads_total"); err != nil {
		t.Error(err)
	}
	m.Loaded(time.Unix(1700000000, 0), false) // the start is no reload
	checkLastReloadSuccessful(t, reg, "1")
	m.Loaded(time.Unix(1700000100, 0), true)
	m.ReloadFailed()
	checkLastReloadSuccessful(t, reg, "0") // a refused file: the older policy runs
	m.Loaded(time.Unix(1700000200, 0), true)
	checkLastReloadSuccessful(t, reg, "1") // fixed
	m.ReloadFailed()
	admin := m.RuleCounter("admin", "allowed")
	m.RuleCounter("health", "public")()
	admin()
	admin()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jwt_sidecar_config_last_reload_success_timestamp_seconds Unix time at which the policy in force was loaded from CONFIG_FILE (at start, or by the last successful reload).
# TYPE jwt_sidecar_config_last_reload_success_timestamp_seconds gauge
jwt_sidecar_config_last_reload_success_timestamp_seconds 1.7000002e+09
# HELP jwt_sidecar_config_last_reload_successful 1 when the last load of CONFIG_FILE (at start or by a reload) put it in force, 0 when the last reload was refused and an older policy is running.
# TYPE jwt_sidecar_config_last_reload_successful gauge
jwt_sidecar_config_last_reload_successful 0
# HELP jwt_sidecar_config_reloads_total Reloads of CONFIG_FILE by result: success (the new policy is in force) or failure (the file was refused; the running policy stays).
# TYPE jwt_sidecar_config_reloads_total counter
jwt_sidecar_config_reloads_total{result="failure"} 2
jwt_sidecar_config_reloads_total{result="success"} 2
# HELP jwt_sidecar_rule_requests_total Requests by the CONFIG_FILE rule that applied (default when none matched) and outcome (allowed, public, unauthenticated, forbidden).
# TYPE jwt_sidecar_rule_requests_total counter
jwt_sidecar_rule_requests_total{outcome="allowed",rule="admin"} 2
jwt_sidecar_rule_requests_total{outcome="public",rule="health"} 1
`)); err != nil {
		t.Error(err)
	}
	// After a reload without the health rule, only admin is exported.
	m.KeepRules([]string{"admin"})
	if n := testutil.CollectAndCount(reg, "jwt_sidecar_rule_requests_total"); n != 1 {
		t.Errorf("rule series after KeepRules = %d, want 1", n)
	}
}

// checkLastReloadSuccessful compares jwt_sidecar_config_last_reload_successful with want.
func checkLastReloadSuccessful(t *testing.T, reg *prometheus.Registry, want string) {
	t.Helper()
	const name = "jwt_sidecar_config_last_reload_successful"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jwt_sidecar_config_last_reload_successful 1 when the last load of CONFIG_FILE (at start or by a reload) put it in force, 0 when the last reload was refused and an older policy is running.
# TYPE jwt_sidecar_config_last_reload_successful gauge
jwt_sidecar_config_last_reload_successful `+want+"\n"), name); err != nil {
		t.Error(err)
	}
}
