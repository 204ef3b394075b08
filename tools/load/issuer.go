//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
)

// The client the load run gets its token as, from the dev issuer.
const (
	issuerClientID     = "load"
	issuerClientSecret = "load-secret"
)

// startIssuer runs the dev token service (jwt-issuer serve) on 127.0.0.1 as
// the OIDC issuer of the run, and fetches one client_credentials token from
// it, valid for validFor. oauth2-proxy needs OIDC discovery, so when it is
// measured every subject trusts this issuer and sends its token.
func startIssuer(ctx context.Context, bin, dir string, validFor time.Duration) (*proc.Child, credentials, error) {
	addr, err := proc.PickAddr()
	if err != nil {
		return nil, credentials{}, err
	}
	issuerURL := "http://" + addr
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"LISTEN_ADDR=" + addr,
		"ISSUER_URL=" + issuerURL,
		"AUDIENCE=" + tokenAudience,
		"CLIENTS=" + issuerClientID + ":" + issuerClientSecret,
		"TOKEN_TTL=" + validFor.String(),
	}
	p, err := startProcess("jwt-issuer", filepath.Join(dir, "jwt-issuer.log"), cmd)
	if err != nil {
		return nil, credentials{}, err
	}
	if err := p.WaitReady(ctx, issuerURL+"/healthz", startTimeout); err != nil {
		p.Stop(time.Second)
		return nil, credentials{}, err
	}
	tok, err := clientCredentialsToken(ctx, issuerURL+"/token")
	if err != nil {
		p.Stop(time.Second)
		return nil, credentials{}, err
	}
	// The dev issuer makes the client the token's subject.
	return p, credentials{token: tok, subject: issuerClientID, issuerURL: issuerURL}, nil
}

// clientCredentialsToken asks tokenURL for a token (RFC 6749 §4.4).
func clientCredentialsToken(ctx context.Context, tokenURL string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(issuerClientID, issuerClientSecret)
	resp, err := probeClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("token: status %d, %v", resp.StatusCode, err)
	}
	return body.AccessToken, nil
}
