package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRevocationMetrics: entries by source and kind, the last success as a
// timestamp, and age and staleness computed at scrape time.
func TestRevocationMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := NewRevocation(reg, RevocationLabels{FetchResults: []string{"ok", "error"}, LogoutResults: []string{"ok"}}, time.Minute)
	now := time.Unix(1_800_000_000, 0)
	r.now = func() time.Time { return now }
	r.Fetch("http://lists.test/revocations", "ok")
	r.Fetch("file:/etc/rev.json", "error")
	r.Loaded("http://lists.test/revocations", 3, 1, now.Add(-10*time.Second))
	r.Loaded("file:/etc/rev.json", 0, 2, now.Add(-2*time.Minute))
	r.Logout("ok")
	want := `
# HELP jwt_sidecar_revocation_entries Revocation entries served now, by source and kind (token, subject).
# TYPE jwt_sidecar_revocation_entries gauge
jwt_sidecar_revocation_entries{kind="subject",source="file:/etc/rev.json"} 2
jwt_sidecar_revocation_entries{kind="subject",source="http://lists.test/revocations"} 1
jwt_sidecar_revocation_entries{kind="token",source="file:/etc/rev.json"} 0
jwt_sidecar_revocation_entries{kind="token",source="http://lists.test/revocations"} 3
# HELP jwt_sidecar_revocation_list_age_seconds Seconds since the source's list was last known good, at scrape time.
# TYPE jwt_sidecar_revocation_list_age_seconds gauge
jwt_sidecar_revocation_list_age_seconds{source="file:/etc/rev.json"} 120
jwt_sidecar_revocation_list_age_seconds{source="http://lists.test/revocations"} 10
# HELP jwt_sidecar_revocation_list_stale 1 when the source's list is older than REVOCATION_STALE_AFTER; it keeps serving.
# TYPE jwt_sidecar_revocation_list_stale gauge
jwt_sidecar_revocation_list_stale{source="file:/etc/rev.json"} 1
jwt_sidecar_revocation_list_stale{source="http://lists.test/revocations"} 0
# HELP jwt_sidecar_revocation_fetches_total Reads of a revocation list source by result (ok, not_modified, from_disk, error, invalid).
# TYPE jwt_sidecar_revocation_fetches_total counter
jwt_sidecar_revocation_fetches_total{result="error",source="file:/etc/rev.json"} 1
jwt_sidecar_revocation_fetches_total{result="ok",source="http://lists.test/revocations"} 1
# HELP jwt_sidecar_backchannel_logouts_total OpenID Connect back-channel logout requests by result (ok, invalid, replayed, unsupported).
# TYPE jwt_sidecar_backchannel_logouts_total counter
jwt_sidecar_backchannel_logouts_total{result="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"jwt_sidecar_revocation_entries", "jwt_sidecar_revocation_list_age_seconds", "jwt_sidecar_revocation_list_stale",
		"jwt_sidecar_revocation_fetches_total", "jwt_sidecar_backchannel_logouts_total"); err != nil {
		t.Error(err)
	}
}
