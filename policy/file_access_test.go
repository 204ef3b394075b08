package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDecodeKeySourceAccess: ca_file and bearer_token_file reach the spec,
// and the files are read when the sources are made, each error naming its
// place in the file.
func TestDecodeKeySourceAccess(t *testing.T) {
	const doc = "providers:\n  - name: cluster\n    oidc_issuer_url: https://kubernetes.default.svc\n" +
		"    ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    bearer_token_file: /var/run/secrets/tokens/jwks\n    audiences: [api]\n"
	pf, err := Decode("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := pf.Providers[0]
	if p.CAFile != "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" || p.BearerTokenFile != "/var/run/secrets/tokens/jwks" {
		t.Fatalf("provider = %+v", p)
	}
	_, err = p.Sources()
	if err == nil || !strings.Contains(err.Error(), "p.yaml:5: providers[0].bearer_token_file: bearer token file: open /var/run/secrets/tokens/jwks") {
		t.Errorf("Sources with a missing token file: %v, want it named by line and field", err)
	}

	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pf, err = Decode("p.yaml", []byte("providers:\n  - name: idp\n    issuer: https://idp.test\n    jwks_url: https://idp.test/jwks\n    bearer_token_file: "+tok+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := pf.Providers[0].Sources()
	if err != nil || len(srcs) != 1 || !strings.Contains(srcs[0].Definition(), "token="+tok) {
		t.Errorf("Sources = %v, %v; want one source whose definition holds the token file", srcs, err)
	}
}
