package keys_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"

	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
)

// waitLog polls the log until it holds want, with a deadline.
func waitLog(t *testing.T, log *proctest.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within 10s:\n%s", want, log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// privateIssuer is a Kubernetes-shaped issuer (TLS under a private CA,
// bearer token required) with the CA and token written to files.
type privateIssuer struct {
	*tlstest.Issuer
	ca              *tlstest.CA
	caFile, tokFile string
	signer          jwttest.Signer
}

func newPrivateIssuer(t *testing.T) *privateIssuer {
	t.Helper()
	dir := t.TempDir()
	p := &privateIssuer{
		ca:      tlstest.NewCA(t, "cluster CA"),
		caFile:  filepath.Join(dir, "ca.crt"),
		tokFile: filepath.Join(dir, "token"),
		signer:  jwttest.NewSigner(t, "RS256", "sa-1"),
	}
	p.Issuer = tlstest.NewIssuer(t, p.ca, "token-1", jwttest.JWKS(t, p.signer))
	tlstest.WriteFile(t, p.caFile, p.ca.PEM)
	tlstest.WriteFile(t, p.tokFile, []byte("token-1\n"))
	return p
}

func oidcSource(t *testing.T, url string, a keys.Access) *keys.Source {
	t.Helper()
	s, err := keys.NewOIDCSource(url, nil).WithAccess(a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAccessWithoutCAFile: the issuer's certificate is not under the system
// roots, so the fetch fails; the error is an unknown authority and the
// refresh loop's log names the cause.
func TestAccessWithoutCAFile(t *testing.T) {
	is := newPrivateIssuer(t)
	var log proctest.Buffer
	rec := &results{}
	src := oidcSource(t, is.URL, keys.Access{BearerTokenFile: is.tokFile})
	k, err := keys.NewKeys(keys.KeyOptions{}, rec, slog.New(slog.NewJSONHandler(&log, nil)), src)
	if err != nil {
		t.Fatal(err)
	}
	err = k.LoadOnce(t.Context())
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("LoadOnce without the CA file: %v, want an unknown authority", err)
	}
	if len(is.Seen()) != 0 {
		t.Errorf("the issuer saw %d requests; a TLS failure must send nothing (the token least of all)", len(is.Seen()))
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = k.Run(ctx); close(done) }()
	waitLog(t, &log, `"cause":"untrusted_certificate"`)
	cancel()
	<-done
	if strings.Contains(log.String(), "token-1") {
		t.Error("the bearer token appears in the log")
	}
	if got := rec.get("error"); got == 0 {
		t.Error("no refresh counted as error")
	}
}

// TestAccessCAAndRotatingToken: with the CA file the source verifies the
// issuer; without the token it is refused (401, cause unauthorized); with
// it, discovery and the key set load. The token file then rotates (as a
// projected service-account token does): the next fetch sends the new
// token, which is the only one the issuer still accepts.
func TestAccessCAAndRotatingToken(t *testing.T) {
	is := newPrivateIssuer(t)
	opts := keys.KeyOptions{RefetchCooldown: time.Nanosecond, MaxWait: 5 * time.Second}

	var log proctest.Buffer
	noToken := oidcSource(t, is.URL, keys.Access{CAFile: is.caFile})
	k0, err := keys.NewKeys(opts, nil, slog.New(slog.NewJSONHandler(&log, nil)), noToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := k0.LoadOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Fatalf("without the token: %v, want status 401", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = k0.Run(ctx); close(done) }()
	waitLog(t, &log, `"cause":"unauthorized"`)
	cancel()
	<-done

	src := oidcSource(t, is.URL, keys.Access{CAFile: is.caFile, BearerTokenFile: is.tokFile})
	k, err := keys.NewKeys(opts, nil, nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.LoadOnce(t.Context()); err != nil {
		t.Fatalf("with the CA and the token: %v", err)
	}
	if _, err := keyFor(t, k, is.URL, is.signer); err != nil {
		t.Fatalf("key of the issuer's signer: %v", err)
	}
	if seen := is.Seen(); !slices.Contains(seen, "token-1") {
		t.Fatalf("the issuer saw tokens %q, want token-1", seen)
	}

	// Rotation: a new token in the file, the issuer accepts only that one,
	// and publishes a new key. A token signed by the new key makes the
	// source refetch, with the new token.
	tlstest.WriteFile(t, is.tokFile, []byte("token-2\n"))
	is.SetToken("token-2")
	next := jwttest.NewSigner(t, "RS256", "sa-2")
	is.SetJWKS(jwttest.JWKS(t, is.signer, next))
	denied := is.Denied()
	if _, err := keyFor(t, k, is.URL, next); err != nil {
		t.Fatalf("key after the token rotation: %v", err)
	}
	if is.Denied() != denied {
		t.Errorf("the issuer refused %d fetches after the rotation: the old token was sent", is.Denied()-denied)
	}
	if seen := is.Seen(); seen[len(seen)-1] != "token-2" {
		t.Errorf("last token presented %q, want token-2", seen[len(seen)-1])
	}
}

// TestAccessCARotation: the issuer moves to a certificate of a new CA and
// the CA file is replaced; a later fetch verifies with the new CA, without
// a restart.
func TestAccessCARotation(t *testing.T) {
	is := newPrivateIssuer(t)
	src := oidcSource(t, is.URL, keys.Access{CAFile: is.caFile, BearerTokenFile: is.tokFile})
	k, err := keys.NewKeys(keys.KeyOptions{RefetchCooldown: time.Nanosecond, MaxWait: 5 * time.Second}, nil, nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.LoadOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	ca2 := tlstest.NewCA(t, "cluster CA 2")
	is.SetCertificate(ca2.Server(t, "kubernetes"))
	is.Config.SetKeepAlivesEnabled(false)
	is.CloseClientConnections()
	tlstest.WriteFile(t, is.caFile, ca2.PEM)
	next := jwttest.NewSigner(t, "RS256", "sa-2")
	is.SetJWKS(jwttest.JWKS(t, next))
	// The CA file is looked at, at most, once a second: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := keyFor(t, k, is.URL, next)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no key under the new CA within 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// TestAccessRefusals: the files are read at once, so a missing one is a
// configuration error; a token never goes over plain http to another
// host; access applies only to remote sources; and the files are part of
// the source's definition (a reload that changes them starts a new one).
func TestAccessRefusals(t *testing.T) {
	is := newPrivateIssuer(t)
	missing := filepath.Join(t.TempDir(), "absent")
	empty := filepath.Join(t.TempDir(), "empty")
	tlstest.WriteFile(t, empty, []byte("\n"))
	for _, tt := range []struct {
		name string
		src  *keys.Source
		a    keys.Access
		want string
	}{
		{"missing CA", keys.NewOIDCSource(is.URL, nil), keys.Access{CAFile: missing}, "CA file"},
		{"CA without certificates", keys.NewOIDCSource(is.URL, nil), keys.Access{CAFile: is.tokFile}, "no PEM certificate"},
		{"missing token", keys.NewOIDCSource(is.URL, nil), keys.Access{BearerTokenFile: missing}, "bearer token file"},
		{"empty token", keys.NewOIDCSource(is.URL, nil), keys.Access{BearerTokenFile: empty}, "is empty"},
		{"token over plain http", keys.NewRemoteSource("http://keys.example/jwks", nil, nil), keys.Access{BearerTokenFile: is.tokFile}, "only over https"},
		{"file source", keys.NewFileSource(is.caFile, nil), keys.Access{CAFile: is.caFile}, "apply only to"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.src.WithAccess(tt.a)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WithAccess = %v, want an error with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "token-1") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
	plain := keys.NewOIDCSource(is.URL, nil)
	withCA := oidcSource(t, is.URL, keys.Access{CAFile: is.caFile})
	withBoth := oidcSource(t, is.URL, keys.Access{CAFile: is.caFile, BearerTokenFile: is.tokFile})
	if plain.Definition() == withCA.Definition() || withCA.Definition() == withBoth.Definition() {
		t.Error("the CA and token files are not part of the definition")
	}
	if again := oidcSource(t, is.URL, keys.Access{CAFile: is.caFile, BearerTokenFile: is.tokFile}); again.Definition() != withBoth.Definition() {
		t.Error("the same access gives another definition")
	}
	if loop, err := keys.NewRemoteSource("http://127.0.0.1:1/jwks", nil, nil).WithAccess(keys.Access{BearerTokenFile: is.tokFile}); err != nil || loop == nil {
		t.Errorf("a token to loopback over http: %v, want allowed", err)
	}
}
