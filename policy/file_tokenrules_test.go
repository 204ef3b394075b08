package policy

import (
	"strings"
	"testing"
	"time"
)

// TestDecodeTokenRules: a provider's typ, max_lifetime and
// allow_sender_constrained, and their defaults.
func TestDecodeTokenRules(t *testing.T) {
	const ok = "providers:\n  - name: idp\n    issuer: https://idp.test\n    jwks_url: https://idp.test/jwks\n"
	pf, err := Decode("p.yaml", []byte(ok+"    typ: at+jwt\n    max_lifetime: 1h\n    allow_sender_constrained: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := pf.Providers[0]; p.RequiredTyp != "at+jwt" || p.MaxLifetime != time.Hour || !p.AllowSenderConstrained {
		t.Errorf("provider = %+v", p)
	}
	pf, err = Decode("p.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if p := pf.Providers[0]; p.RequiredTyp != "" || p.MaxLifetime != 0 || p.AllowSenderConstrained {
		t.Errorf("defaults = %+v", p)
	}
	for doc, want := range map[string]string{
		ok + "    typ: \"at+jwt, JWT\"\n":            `p.yaml:5: providers[0].typ: "at+jwt, JWT": want one media type`,
		ok + "    max_lifetime: -1h\n":               "p.yaml:5: providers[0].max_lifetime: -1h0m0s: must not be negative",
		ok + "    max_lifetime: soon\n":              "p.yaml:5: providers[0].max_lifetime",
		ok + "    allow_sender_constrained: maybe\n": "p.yaml:5: providers[0].allow_sender_constrained",
	} {
		if _, err := Decode("p.yaml", []byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", doc, err, want)
		}
	}
}
