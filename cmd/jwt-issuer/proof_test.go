package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
)

// TestProofCommand: proof prints a proof that the resource server's
// checker accepts for a token bound to the key that -jkt prints, for each
// key type genkey makes that DPoP allows.
func TestProofCommand(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"ES256", "ES384", "PS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			key := writeKey(t, dir, alg)
			jkt := strings.TrimSpace(runCLI(t, "proof", "-key", key, "-jkt"))
			const uri = "http://127.0.0.1:7070/orders?x=1"
			proof := strings.TrimSpace(runCLI(t, "proof", "-key", key, "-htm", "POST", "-htu", uri, "-token", "tok", "-nonce", "n"))
			c, err := dpop.New(dpop.Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := c.CheckToken(dpop.Request{Method: "POST", URI: uri, Proofs: []string{proof}, AccessToken: "tok"}, "DPoP", jkt)
			if err != nil {
				t.Fatalf("the checker refused the proof: %v", err)
			}
			if p.Nonce != "n" || p.HTU != "http://127.0.0.1:7070/orders" || time.Since(p.IAT) > time.Minute {
				t.Errorf("proof = %+v", p)
			}
		})
	}
}

func TestProofCommandErrors(t *testing.T) {
	key := writeKey(t, t.TempDir(), "ES256")
	for _, tt := range []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{args: []string{"-htu", "http://x/"}, wantCode: 1, wantErr: "-key is required"},
		{args: []string{"-key", key}, wantCode: 1, wantErr: "-htu is required"},
		{args: []string{"-key", key, "-htu", "/relative"}, wantCode: 1, wantErr: "not an absolute http(s) URI"},
		{args: []string{"-key", key, "-htu", "http://x/", "extra"}, wantCode: 1, wantErr: `unexpected argument "extra"`},
		{args: []string{"-bogus"}, wantCode: 2, wantErr: "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"proof"}, tt.args...), &stdout, &stderr, nil)
		if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) || stdout.Len() != 0 {
			t.Errorf("proof %v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.wantCode, tt.wantErr)
		}
	}
}
