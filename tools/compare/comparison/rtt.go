package comparison

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// RTT is the token-service round trip of a run: as set, and as measured
// through the relay before the phases.
type RTT struct {
	Seconds float64 `json:"seconds"`
	// Measured is the median of GET /healthz through the relay less the
	// median straight to the issuer, each on a kept-alive connection; nil
	// without a relay. Timers and a shared CPU make it longer than set,
	// never shorter.
	Measured *float64 `json:"measured_seconds,omitempty"`
}

// rttProbes is how many exchanges measureRTT times each way.
const rttProbes = 21

// measureRTT times what the relay adds to one exchange with the issuer.
func (s *stack) measureRTT(ctx context.Context) (*float64, error) {
	if s.relay == nil {
		return nil, nil
	}
	median := func(base string) (float64, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
		defer c.CloseIdleConnections()
		var took []float64
		for i := range rttProbes + 1 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
			if err != nil {
				return 0, err
			}
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				return 0, fmt.Errorf("measure the round trip: %w", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if i > 0 { // the first opened the connection
				took = append(took, time.Since(start).Seconds())
			}
		}
		slices.Sort(took)
		return took[len(took)/2], nil
	}
	through, err := median("http://" + s.relay.Addr())
	if err != nil {
		return nil, err
	}
	direct, err := median(s.urls[jobIssuer])
	if err != nil {
		return nil, err
	}
	return ptr(through - direct), nil
}
