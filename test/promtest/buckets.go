// Package promtest checks a real Prometheus exposition, as scraped from a
// running binary's /metrics.
package promtest

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Scrape GETs url (a /metrics endpoint) and returns the text exposition.
func Scrape(t testing.TB, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4") // the text format, which people read
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, body)
	}
	return string(body)
}

// CheckBucketBounds checks every histogram of text: each has bucket lines,
// and each le bound is the shortest decimal of its float
// (strconv.FormatFloat(v, 'g', -1, 64) prints it back) with few
// significant digits and no run of 9s or 0s, so le="0.001" written by hand
// in PromQL matches, never le="0.0009999999999999998". want names the
// histograms that must be there, so an exposition without any fails.
// It returns the histograms it checked.
func CheckBucketBounds(t testing.TB, text string, want ...string) []string {
	t.Helper()
	var hists []string
	for line := range strings.Lines(text) {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && f[3] == "histogram" {
			hists = append(hists, f[2])
		}
	}
	for _, w := range want {
		if !slices.Contains(hists, w) {
			t.Errorf("histogram %s is not in the exposition (histograms: %v)", w, hists)
		}
	}
	for _, h := range hists {
		n := 0
		for line := range strings.Lines(text) {
			if !strings.HasPrefix(line, h+"_bucket{") {
				continue
			}
			n++
			_, rest, ok := strings.Cut(line, `le="`)
			if !ok {
				t.Errorf("bucket without le: %s", line)
				continue
			}
			le, _, _ := strings.Cut(rest, `"`)
			if err := BoundProblem(le); err != "" {
				t.Errorf("%s: le=%q %s", h, le, err)
			}
		}
		if n == 0 {
			t.Errorf("histogram %s has no bucket lines", h)
		}
	}
	return hists
}

// BoundProblem says what is wrong with an le label value, or "".
func BoundProblem(le string) string {
	if le == "+Inf" {
		return ""
	}
	v, err := strconv.ParseFloat(le, 64)
	if err != nil {
		return "is not a number"
	}
	if s := strconv.FormatFloat(v, 'g', -1, 64); s != le {
		return "is not the shortest form " + s
	}
	digits := le
	if i := strings.IndexAny(digits, "eE"); i >= 0 {
		digits = digits[:i]
	}
	digits = strings.Trim(strings.NewReplacer(".", "", "-", "", "+", "").Replace(digits), "0")
	switch {
	case strings.Contains(digits, "9999"), strings.Contains(digits, "0000"):
		return "has a run of 9s or 0s: a bound computed in floating point, not a decimal"
	case len(digits) > 6:
		return "has " + strconv.Itoa(len(digits)) + " significant digits: a bound computed in floating point, not a decimal"
	}
	return ""
}
