package metrics

import "github.com/prometheus/client_golang/prometheus"

// LogLines counts log lines the refusal rate limit (REFUSAL_LOG_RATE)
// dropped, so a quiet log during a flood of bad tokens is visible as such.
type LogLines struct {
	dropped prometheus.Counter
}

// NewLogLines creates jwt_sidecar_log_lines_dropped_total on reg.
func NewLogLines(reg prometheus.Registerer) *LogLines {
	l := &LogLines{dropped: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "log_lines_dropped_total",
		Help:      "Refusal log lines (and refused requests' access-log lines) not written because REFUSAL_LOG_RATE was exceeded.",
	})}
	reg.MustRegister(l.dropped)
	return l
}

// LogLineDropped counts one dropped line.
func (l *LogLines) LogLineDropped() { l.dropped.Inc() }
