package comparison

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one series of a scrape as Prometheus stores it: histograms
// become their _bucket (with le), _count and _sum series.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// key identifies the series of s across scrapes.
func (s sample) key() string {
	names := make([]string, 0, len(s.labels))
	for k := range s.labels {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString(s.name)
	for _, k := range names {
		fmt.Fprintf(&b, ",%s=%q", k, s.labels[k])
	}
	return b.String()
}

// scrape is one /metrics page, flattened.
type scrape struct {
	samples []sample
	byKey   map[string]float64
}

// parseScrape reads a Prometheus text exposition.
func parseScrape(r io.Reader) (*scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	s := &scrape{byKey: map[string]float64{}}
	add := func(name string, base map[string]string, extra string, extraValue string, v float64) {
		labels := make(map[string]string, len(base)+1)
		for k, val := range base {
			labels[k] = val
		}
		if extra != "" {
			labels[extra] = extraValue
		}
		smp := sample{name: name, labels: labels, value: v}
		s.samples = append(s.samples, smp)
		s.byKey[smp.key()] = v
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			base := map[string]string{}
			for _, l := range m.GetLabel() {
				base[l.GetName()] = l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				add(name, base, "", "", m.GetCounter().GetValue())
			case m.GetGauge() != nil:
				add(name, base, "", "", m.GetGauge().GetValue())
			case m.GetUntyped() != nil:
				add(name, base, "", "", m.GetUntyped().GetValue())
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					if !math.IsInf(b.GetUpperBound(), 1) { // added from the count below
						add(name+"_bucket", base, "le", formatLe(b.GetUpperBound()), float64(b.GetCumulativeCount()))
					}
				}
				add(name+"_bucket", base, "le", "+Inf", float64(h.GetSampleCount()))
				add(name+"_count", base, "", "", float64(h.GetSampleCount()))
				add(name+"_sum", base, "", "", h.GetSampleSum())
			}
		}
	}
	return s, nil
}

func formatLe(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// matcher selects series by their labels.
type matcher func(labels map[string]string) bool

// eq matches series whose label k is v.
func eq(k, v string) matcher {
	return func(l map[string]string) bool { return l[k] == v }
}

// oneOf matches series whose label k is one of vs.
func oneOf(k string, vs ...string) matcher {
	return func(l map[string]string) bool { return slices.Contains(vs, l[k]) }
}

// hasPrefix matches series whose label k starts with p, e.g. code 2xx.
func hasPrefix(k, p string) matcher {
	return func(l map[string]string) bool { return strings.HasPrefix(l[k], p) }
}

func matches(l map[string]string, ms []matcher) bool {
	for _, m := range ms {
		if !m(l) {
			return false
		}
	}
	return true
}

// has reports whether the scrape holds any series of name.
func (s *scrape) has(name string) bool {
	if s == nil {
		return false
	}
	for _, smp := range s.samples {
		if smp.name == name {
			return true
		}
	}
	return false
}

// increase is what the matching series of counter name gained from a to
// b, summed: Prometheus's increase() without extrapolation. A nil a is a
// process that was not there: everything in b is new.
func increase(a, b *scrape, name string, ms ...matcher) float64 {
	if b == nil {
		return 0
	}
	sum := 0.0
	for _, smp := range b.samples {
		if smp.name == name && matches(smp.labels, ms) {
			sum += a.gain(smp)
		}
	}
	return sum
}

// gain is what smp gained since s. A series that went down was reset (its
// process restarted) and counts from zero, as does one s lacks.
func (s *scrape) gain(smp sample) float64 {
	before := 0.0
	if s != nil {
		before = s.byKey[smp.key()]
	}
	if d := smp.value - before; d >= 0 {
		return d
	}
	return smp.value
}

// Bucket is one cumulative histogram bucket: Count observations at or
// below LE.
type Bucket struct {
	LE    float64
	Count float64
}

// bucketIncrease is the histogram name's buckets as increased from a to b,
// summed over the matching series: the input of histogram_quantile over
// a phase.
func bucketIncrease(a, b *scrape, name string, ms ...matcher) []Bucket {
	if b == nil {
		return nil
	}
	byLe := map[float64]float64{}
	for _, smp := range b.samples {
		if smp.name != name+"_bucket" || !matches(smp.labels, ms) {
			continue
		}
		le, err := strconv.ParseFloat(smp.labels["le"], 64)
		if err != nil {
			continue
		}
		byLe[le] += a.gain(smp)
	}
	out := make([]Bucket, 0, len(byLe))
	for le, c := range byLe {
		out = append(out, Bucket{LE: le, Count: c})
	}
	slices.SortFunc(out, func(x, y Bucket) int { return cmp.Compare(x.LE, y.LE) })
	return out
}

// Quantile estimates the q-quantile of cumulative buckets, sorted by LE, as
// Prometheus's histogram_quantile does: find the bucket that holds the rank and
// interpolate linearly inside it, from 0 for the first bucket. A rank in
// the +Inf bucket gives the highest finite bound. NaN without observations
// or without a +Inf bucket.
func Quantile(q float64, buckets []Bucket) float64 {
	n := len(buckets)
	if n < 2 || !math.IsInf(buckets[n-1].LE, 1) || q < 0 || q > 1 {
		return math.NaN()
	}
	// Counts taken at slightly different moments can dip; histogram_quantile
	// makes them monotonic the same way.
	counts := make([]float64, n)
	for i, b := range buckets {
		counts[i] = b.Count
		if i > 0 {
			counts[i] = max(counts[i], counts[i-1])
		}
	}
	total := counts[n-1]
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	i, _ := slices.BinarySearchFunc(counts, rank, func(c, r float64) int {
		if c < r {
			return -1
		}
		return 1
	})
	if i >= n-1 {
		return buckets[n-2].LE
	}
	if i == 0 && buckets[0].LE <= 0 {
		return buckets[0].LE
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = buckets[i-1].LE, counts[i-1]
	}
	inBucket := counts[i] - below
	if inBucket == 0 {
		return buckets[i].LE
	}
	return lower + (buckets[i].LE-lower)*(rank-below)/inBucket
}
