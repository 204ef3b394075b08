package config_test

import (
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

func base() map[string]string {
	return map[string]string{
		"UPSTREAM_URL": "http://127.0.0.1:3000",
		"JWKS_URLS":    "https://idp.test/jwks",
		"ISSUERS":      "https://idp.test",
	}
}

// TestTypeErrorsHideNothing: a value of the wrong type is reported in
// operator words, together with every other problem.
func TestTypeErrorsHideNothing(t *testing.T) {
	env := base()
	env["REQUIRE_EXP"] = "yes"
	env["CLOCK_SKEW"] = "30"
	env["MAX_TOKEN_SIZE"] = "8k"
	env["JWKS_MAX_BYTES"] = "0" // parses, but is a problem of its own
	env["LISTEN_ADDR"] = ":99999"
	env["ADMIN_ADDR"] = ":-1"
	env["MAX_TOKEN_LIFETIME"] = "-1h"
	_, err := config.Load(env)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`REQUIRE_EXP: want true or false, not "yes"`,
		`CLOCK_SKEW: want a duration such as 30s, 5m or 1h30m, not "30"`,
		`MAX_TOKEN_SIZE: want a whole number, not "8k"`,
		"JWKS_MAX_BYTES:",
		"LISTEN_ADDR: port 99999 is out of range: want 0 to 65535",
		"ADMIN_ADDR: port -1 is out of range",
		"MAX_TOKEN_LIFETIME: must not be negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, raw := range []string{"strconv.", "ParseBool", "time: invalid duration"} {
		if strings.Contains(err.Error(), raw) {
			t.Errorf("error shows library text %q:\n%v", raw, err)
		}
	}
	// The zero value a failed variable holds raises no second problem.
	if strings.Count(err.Error(), "CLOCK_SKEW") != 1 {
		t.Errorf("CLOCK_SKEW reported more than once:\n%v", err)
	}
}

// TestHardeningVars: the defaults and the values of the hardening block.
func TestHardeningVars(t *testing.T) {
	c, err := config.Load(base())
	if err != nil {
		t.Fatal(err)
	}
	if !c.PathStrict || c.RequiredTyp != "" || c.MaxTokenLifetime != 0 || c.AllowSenderConstrained {
		t.Errorf("defaults: %+v", c)
	}
	env := base()
	env["PATH_STRICT"], env["REQUIRED_TYP"], env["MAX_TOKEN_LIFETIME"], env["ALLOW_SENDER_CONSTRAINED"] = "false", "at+jwt", "1h", "true"
	if c, err = config.Load(env); err != nil {
		t.Fatal(err)
	}
	if c.PathStrict || c.RequiredTyp != "at+jwt" || c.MaxTokenLifetime.String() != "1h0m0s" || !c.AllowSenderConstrained {
		t.Errorf("set: %+v", c)
	}
	env["REQUIRED_TYP"] = "at+jwt, JWT"
	if _, err := config.Load(env); err == nil || !strings.Contains(err.Error(), "REQUIRED_TYP") {
		t.Errorf("a list in REQUIRED_TYP: %v", err)
	}
	for _, addr := range []string{":0", ":7070", "127.0.0.1:65535", "[::1]:http"} {
		env := base()
		env["LISTEN_ADDR"] = addr
		if _, err := config.Load(env); err != nil {
			t.Errorf("LISTEN_ADDR=%s: %v", addr, err)
		}
	}
}
