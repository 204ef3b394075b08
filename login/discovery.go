package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxBody bounds what is read of a discovery document or a token response.
const maxBody = 1 << 20

// retryDiscovery is the least time between two failed discovery fetches,
// so a provider that is down costs one fetch per interval, not one per
// browser.
const retryDiscovery = 5 * time.Second

// provider is what discovery says about the identity provider.
type provider struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
}

// discoverer fetches the discovery document once it is first needed and
// keeps it; a failure is remembered for retryDiscovery.
type discoverer struct {
	issuer string
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	got     *provider
	lastErr error
	lastTry time.Time
}

// get returns the provider, fetching the document when it has none.
func (d *discoverer) get(ctx context.Context) (*provider, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.got != nil {
		return d.got, nil
	}
	if d.lastErr != nil && d.now().Sub(d.lastTry) < retryDiscovery {
		return nil, d.lastErr
	}
	p, err := d.fetch(ctx)
	d.got, d.lastErr, d.lastTry = p, err, d.now()
	return p, err
}

// fetch reads and checks the OpenID Connect Discovery 1.0 document.
func (d *discoverer) fetch(ctx context.Context) (*provider, error) {
	where := strings.TrimSuffix(d.issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery: %s answered %d", where, resp.StatusCode)
	}
	var p provider
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&p); err != nil {
		return nil, fmt.Errorf("discovery: %s: %w", where, err)
	}
	// OpenID Connect Discovery 1.0 §4.3: the issuer must be exactly the one
	// the document was fetched for, or a provider could speak for another.
	if p.Issuer != d.issuer {
		return nil, fmt.Errorf("discovery: the document names issuer %q, not %q", p.Issuer, d.issuer)
	}
	for _, e := range []struct{ name, at string }{
		{"authorization_endpoint", p.AuthorizationEndpoint},
		{"token_endpoint", p.TokenEndpoint},
	} {
		if !absoluteHTTP(e.at) {
			return nil, fmt.Errorf("discovery: %s %q is not an absolute http(s) URL", e.name, e.at)
		}
	}
	if p.EndSessionEndpoint != "" && !absoluteHTTP(p.EndSessionEndpoint) {
		return nil, fmt.Errorf("discovery: end_session_endpoint %q is not an absolute http(s) URL", p.EndSessionEndpoint)
	}
	// RFC 8414 §2: absent means the provider does not say; PKCE is sent
	// anyway (a server that ignores it loses nothing), but one that lists
	// methods without S256 would refuse every login.
	if p.CodeChallengeMethods != nil && !slices.Contains(p.CodeChallengeMethods, "S256") {
		return nil, errors.New("discovery: the provider does not support PKCE with S256")
	}
	return &p, nil
}

// absoluteHTTP reports whether s is an absolute http or https URL without
// a fragment.
func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.Fragment == ""
}
