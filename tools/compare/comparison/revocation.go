package comparison

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// probeClientID is the issuer client of the revocation probe: its own
// token, so revoking it leaves the load generator's alone.
const probeClientID = "probe"

// probeEvery is how often the revocation probe asks each sidecar: the
// resolution of the time to the first refusal.
const probeEvery = 5 * time.Millisecond

// Revocation is one mode's answer to a revoked token: how long after the
// issuer's /revoke answered the sidecar first refused it.
type Revocation struct {
	// RefusedAfter is seconds from the /revoke answer to the first 401;
	// nil when no refusal came before the deadline.
	RefusedAfter *float64 `json:"refused_after_seconds"`
	// WaitedSeconds is how long the probe asked; Probes how many requests
	// it sent (each an introspection call in that mode).
	WaitedSeconds float64 `json:"waited_seconds"`
	Probes        int     `json:"probes"`
	// Challenge is the refusal's WWW-Authenticate.
	Challenge string `json:"www_authenticate,omitempty"`
}

// revocationDeadline is how long the probe waits for a refusal: two poll
// intervals and a few seconds, far past where the jwt mode must refuse.
func (o Options) revocationDeadline() time.Duration {
	return 2*o.RevocationInterval + 3*time.Second
}

// revoke gets a token for the probe client, checks that every sidecar
// accepts it, revokes it at the issuer (RFC 7009) and asks each sidecar
// every probeEvery until it refuses, in parallel. It returns each mode's
// result and the time the revocation took effect at the issuer.
func (s *stack) revoke(ctx context.Context) (map[string]*Revocation, time.Time, error) {
	tok, err := s.probeToken(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, m := range s.o.Modes {
		status, _, err := s.probe(ctx, m, tok)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("revocation probe: %s: %w", sidecarJob(m), err)
		}
		if status != http.StatusOK {
			return nil, time.Time{}, fmt.Errorf("revocation probe: %s answered %d to a fresh token, want 200", sidecarJob(m), status)
		}
	}
	if err := s.issuerPost(ctx, "/revoke", url.Values{"token": {tok}}); err != nil {
		return nil, time.Time{}, err
	}
	revoked := time.Now() // the issuer has answered: the token is revoked there
	deadline := revoked.Add(s.o.revocationDeadline())

	out := map[string]*Revocation{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(s.o.Modes))
	for i, m := range s.o.Modes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Revocation{}
			tick := time.NewTicker(probeEvery)
			defer tick.Stop()
			for {
				status, challenge, err := s.probe(ctx, m, tok)
				r.Probes++
				now := time.Now()
				if err != nil && ctx.Err() != nil {
					errs[i] = err
					return
				}
				if status == http.StatusUnauthorized {
					r.RefusedAfter = ptr(now.Sub(revoked).Seconds())
					r.Challenge = challenge
				}
				if status == http.StatusUnauthorized || now.After(deadline) {
					r.WaitedSeconds = now.Sub(revoked).Seconds()
					mu.Lock()
					out[m] = r
					mu.Unlock()
					return
				}
				select {
				case <-ctx.Done():
					errs[i] = ctx.Err()
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	return out, revoked, errors.Join(errs...)
}

// revocationClient is the revocation probe's keep-alive client; never through
// a proxy.
var revocationClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// probe sends one request with tok to the sidecar of mode and returns the
// status and challenge.
func (s *stack) probe(ctx context.Context, mode, tok string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.target[mode]+"/revocation-probe", nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := revocationClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nil
}

// probeToken gets a client_credentials token for the probe client straight
// from the issuer.
func (s *stack) probeToken(ctx context.Context) (string, error) {
	resp, err := s.issuerDo(ctx, "/token", url.Values{"grant_type": {"client_credentials"}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("probe token: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || body.AccessToken == "" {
		return "", fmt.Errorf("probe token: no access_token in the answer (%v)", err)
	}
	return body.AccessToken, nil
}

// issuerPost POSTs form to the issuer as the probe client and wants 200.
func (s *stack) issuerPost(ctx context.Context, path string, form url.Values) error {
	resp, err := s.issuerDo(ctx, path, form)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

func (s *stack) issuerDo(ctx context.Context, path string, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.urls[jobIssuer]+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(probeClientID, s.probeSecret)
	return probeClient.Do(req)
}
