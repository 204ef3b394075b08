package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/capool"
)

// issuerClient is the HTTP client of a provider's browser login: with a CA
// file (JWKS_CA_FILE, a provider's ca_file), the issuer's private CA
// verifies its token endpoint as it verifies its keys; without one, nil
// (the login's default client). The bearer token file is for key fetches
// only and is never sent here.
func issuerClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := capool.New(caFile, time.Second, nil)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{Transport: capool.NewTransport(pool, base), Timeout: 10 * time.Second}, nil
}
